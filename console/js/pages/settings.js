// Settings: people and roles, invitations, API keys, mail, the suppression list, and the
// latest sign-ins. Changing any of it needs an admin; others see who is in the workspace.

import { gql, can, currentSession } from "../api.js";
import { h, mount, field, select, label, fmtDate, fmtDateTime, badge, loading, empty, toast, dialog, confirm, showError, clearErrors } from "../ui.js";

const ROLES = [["ADMIN", "Admin"], ["MANAGER", "Manager"], ["MEMBER", "Member"], ["VIEWER", "Viewer"]];
const ROLE_HELP = "Viewers read; members change their own and unowned records; managers change any record; admins also manage people, keys and settings.";

export async function settingsPage(page) {
  const admin = can("admin");
  const people = h("div", {}, loading());
  const invites = h("div", {}, loading());
  const keys = h("div", {}, loading());
  const mail = h("div", {}, loading());
  const suppressions = h("div", {}, loading());
  const attempts = h("div", {}, loading());
  mount(page,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Settings"), h("div", { class: "sub" }, admin ? "People, access and mail for this workspace." : "Who works in this workspace. Ask an admin to change anything here."))),
    section("People", people),
    admin ? h("div", { class: "grid two", style: { marginTop: "16px" } }, section("Invitations", invites), section("Mail", mail)) : null,
    admin ? section("API keys", keys) : null,
    admin ? h("div", { class: "grid two", style: { marginTop: "16px" } }, section("Suppression list", suppressions), section("Recent sign-ins", attempts)) : null);
  loadPeople(people, admin);
  if (!admin) return;
  loadInvites(invites);
  loadKeys(keys);
  loadMail(mail);
  loadSuppressions(suppressions);
  loadAttempts(attempts);
}

function section(title, body) {
  const id = `s-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { class: "panel", "aria-labelledby": id, style: { marginTop: "16px" } }, h("h2", { id }, title), body);
}

async function loadPeople(box, admin) {
  let users;
  try {
    users = (await gql(`{ users(first: 200, orderBy: [{field: NAME, direction: ASC}]) { nodes { id name email role canSignIn createdAt team { name } } } }`)).users.nodes;
  } catch (e) {
    return mount(box, empty(e.message));
  }
  const me = currentSession().user.id;
  mount(box, h("p", { class: "small muted" }, ROLE_HELP), h("div", { class: "table-wrap" }, h("table", { id: "people-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Email"), h("th", {}, "Role"), h("th", {}, "Team"), h("th", {}, "Since"), admin ? h("th", {}, h("span", { class: "sr-only" }, "Actions")) : null)),
    h("tbody", {}, users.map((u) => {
      const role = admin && u.id !== me ? select("role", ROLES, u.role) : null;
      if (role) {
        role.setAttribute("aria-label", `Role of ${u.name}`);
        role.addEventListener("change", async () => {
          try {
            await gql(`mutation R($id: ID!, $role: UserRole!) { updateUser(id: $id, input: { role: $role }) { id role } }`, { id: u.id, role: role.value });
            toast(`${u.name} is now ${label(role.value).toLowerCase()}.`);
          } catch (e) {
            toast(e.message, "error");
            role.value = u.role;
          }
        });
      }
      return h("tr", { "data-user": u.id },
        h("td", {}, u.name, u.id === me ? h("span", { class: "muted small" }, " (you)") : null, u.canSignIn ? null : [" ", badge("cannot sign in yet", "warn")]),
        h("td", {}, u.email),
        h("td", {}, role || badge(label(u.role), u.role === "ADMIN" ? "accent" : "")),
        h("td", {}, u.team?.name || "–"),
        h("td", { class: "small" }, fmtDate(u.createdAt)),
        admin ? h("td", { class: "right" }, admin && !u.canSignIn ? h("button", { type: "button", class: "ghost", "data-invite": u.id, onclick: async () => {
          try {
            const r = (await gql(`mutation I($email: String!, $name: String!, $role: UserRole!) { inviteUser(email: $email, name: $name, role: $role) { emailed link emailError } }`, { email: u.email, name: u.name, role: u.role })).inviteUser;
            if (r.emailed) toast(`Invitation sent to ${u.email}.`);
            else await dialog("Invitation link", h("div", {}, h("p", {}, `The email could not be sent (${r.emailError}). Give ${u.email} this one-time link yourself:`), h("div", { class: "secret" }, r.link)), [{ label: "Done", value: "done" }]);
          } catch (e) {
            toast(e.message, "error");
          }
        } }, "Invite") : null, u.id !== me ? h("button", { type: "button", class: "ghost", onclick: async () => {
          if (!(await confirm("Remove person", `${u.name} will be signed out and can no longer sign in. Their records stay.`, "Remove", "danger solid"))) return;
          try {
            await gql(`mutation D($id: ID!) { deleteUser(id: $id) }`, { id: u.id });
            toast(`${u.name} removed.`);
            loadPeople(box, admin);
          } catch (e) {
            toast(e.message, "error");
          }
        } }, "Remove") : null) : null);
    })))));
}

async function loadInvites(box) {
  const email = h("input", { name: "email", type: "email", required: true, placeholder: "name@company.com" });
  const name = h("input", { name: "name", required: true });
  const role = select("role", ROLES, "MEMBER");
  const result = h("div", {});
  const form = h("form", { id: "invite-form", onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      const r = (await gql(`mutation I($email: String!, $name: String!, $role: UserRole!) {
        inviteUser(email: $email, name: $name, role: $role) { emailed link emailError invitation { id email expiresAt } }
      }`, { email: email.value.trim(), name: name.value.trim(), role: role.value })).inviteUser;
      form.reset();
      mount(result, r.emailed
        ? h("p", { role: "status" }, badge("Sent", "good"), ` An invitation is on its way to ${r.invitation.email}; it works until ${fmtDateTime(r.invitation.expiresAt)}.`)
        : h("div", { role: "status" }, h("p", {}, `The email could not be sent (${r.emailError}). Give ${r.invitation.email} this one-time link yourself:`), h("div", { class: "secret" }, r.link)));
      list();
    } catch (err) {
      showError(form, err);
    }
  } },
  h("div", { class: "grid two" }, field("Email", email), field("Name", name)),
  h("div", { class: "row" }, h("div", { style: { flex: "1" } }, field("Role", role)), h("button", { type: "submit", class: "primary" }, "Send invitation")));
  const table = h("div", {});
  mount(box, form, result, table);
  async function list() {
    let items;
    try {
      items = (await gql(`{ invitations { id email role createdAt expiresAt expired } }`)).invitations;
    } catch (e) {
      return mount(table, empty(e.message));
    }
    mount(table, items.length ? h("table", { id: "invitations-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Email"), h("th", {}, "Role"), h("th", {}, "Expires"), h("th", {}, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", {}, items.map((i) => h("tr", {},
        h("td", {}, i.email), h("td", {}, label(i.role)),
        h("td", {}, i.expired ? badge("expired", "bad") : fmtDateTime(i.expiresAt)),
        h("td", { class: "right" }, h("button", { type: "button", class: "ghost", onclick: async () => {
          try {
            await gql(`mutation X($id: ID!) { revokeInvitation(id: $id) }`, { id: i.id });
            toast("Invitation withdrawn.");
            list();
          } catch (e) {
            toast(e.message, "error");
          }
        } }, "Withdraw"))))))
      : h("p", { class: "muted small", style: { marginTop: "8px" } }, "No pending invitations."));
  }
  list();
}

async function loadKeys(box) {
  const name = h("input", { name: "name", required: true, placeholder: "e.g. Website sync" });
  const scope = select("scope", [["READ", "Read"], ["WRITE", "Read and write"], ["ADMIN", "Admin"]], "READ");
  const shown = h("div", {});
  const form = h("form", { id: "key-form", class: "row", onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    const scopes = { READ: ["READ"], WRITE: ["READ", "WRITE"], ADMIN: ["READ", "WRITE", "ADMIN"] }[scope.value];
    try {
      const k = (await gql(`mutation K($name: String!, $scopes: [Scope!]!) { createApiKey(name: $name, scopes: $scopes) { key apiKey { id name } } }`, { name: name.value.trim(), scopes })).createApiKey;
      form.reset();
      mount(shown, h("div", { role: "status", class: "stack", style: { margin: "12px 0" } }, h("p", {}, badge("Created", "good"), ` Copy the key “${k.apiKey.name}” now: it is shown only once.`), h("div", { class: "secret", id: "new-key" }, k.key)));
      list();
    } catch (err) {
      showError(form, err);
    }
  } }, h("div", { style: { flex: "2" } }, field("Name", name)), h("div", { style: { flex: "1" } }, field("Scope", scope)), h("button", { type: "submit", class: "primary" }, "Create key"));
  const table = h("div", {});
  mount(box, form, shown, table);
  async function list() {
    let keys;
    try {
      keys = (await gql(`{ apiKeys { id name prefix scopes createdAt lastUsedAt revokedAt } }`)).apiKeys;
    } catch (e) {
      return mount(table, empty(e.message));
    }
    mount(table, keys.length ? h("div", { class: "table-wrap" }, h("table", { id: "keys-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Key"), h("th", {}, "Scopes"), h("th", {}, "Last used"), h("th", {}, "State"), h("th", {}, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", {}, keys.map((k) => h("tr", {},
        h("td", {}, k.name), h("td", { class: "small" }, h("code", {}, `rk_${k.prefix}_…`)),
        h("td", {}, k.scopes.map((s) => label(s)).join(", ")),
        h("td", { class: "small" }, k.lastUsedAt ? fmtDateTime(k.lastUsedAt) : "never"),
        h("td", {}, k.revokedAt ? badge("revoked", "bad") : badge("active", "good")),
        h("td", { class: "right" }, k.revokedAt ? null : h("button", { type: "button", class: "ghost", onclick: async () => {
          if (!(await confirm("Revoke key", `Apps using “${k.name}” stop working at once.`, "Revoke", "danger solid"))) return;
          try {
            await gql(`mutation V($id: ID!) { revokeApiKey(id: $id) { id } }`, { id: k.id });
            toast("Key revoked.");
            list();
          } catch (e) {
            toast(e.message, "error");
          }
        } }, "Revoke")))))))
      : empty("No keys yet."));
  }
  list();
}

async function loadMail(box) {
  try {
    const m = (await gql(`{ mailStatus { configured smtp reachable dkim from } }`)).mailStatus;
    const yes = (ok, good, bad) => badge(ok ? good : bad, ok ? "good" : "bad");
    mount(box, h("dl", { class: "kv", id: "mail-status" },
      h("dt", {}, "Sending"), h("dd", {}, m.configured ? (m.smtp ? "Through SMTP" : "Into an outbox folder (no SMTP configured)") : yes(false, "", "Not configured")),
      h("dt", {}, "Mail server"), h("dd", {}, m.smtp ? yes(m.reachable, "Reachable", "Not reachable") : "–"),
      h("dt", {}, "DKIM"), h("dd", {}, yes(m.dkim, "Signing", "Not configured")),
      h("dt", {}, "Sender"), h("dd", {}, m.from || "–")));
  } catch (e) {
    mount(box, empty(e.message));
  }
}

async function loadSuppressions(box) {
  const email = h("input", { name: "email", type: "email", placeholder: "address to suppress", "aria-label": "Address to suppress" });
  const form = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      await gql(`mutation S($e: String!) { suppressEmail(email: $e) { id } }`, { e: email.value.trim() });
      toast("Suppressed: no marketing email will go to it.");
      loadSuppressions(box);
    } catch (err) {
      showError(form, err);
    }
  } }, h("div", { style: { flex: "1" } }, field("Suppress an address", email)), h("button", { type: "submit" }, "Suppress"));
  let rows;
  try {
    rows = (await gql(`{ suppressions(first: 50) { id reason note createdAt } }`)).suppressions;
  } catch (e) {
    return mount(box, empty(e.message));
  }
  mount(box, form, h("p", { class: "small muted" }, "Addresses are kept only as hashes, so the list cannot leak them."),
    rows.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Reason"), h("th", {}, "Note"), h("th", {}, "Since"))),
      h("tbody", {}, rows.map((r) => h("tr", {}, h("td", {}, badge(label(r.reason), r.reason === "MANUAL" ? "" : "warn")), h("td", { class: "small" }, r.note || "–"), h("td", { class: "small" }, fmtDate(r.createdAt))))))
      : empty("Nobody is suppressed."));
}

async function loadAttempts(box) {
  try {
    const rows = (await gql(`{ signInAttempts(first: 15) { id outcome ip at user { name } } }`)).signInAttempts;
    mount(box, rows.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Who"), h("th", {}, "Outcome"), h("th", {}, "From"), h("th", {}, "When"))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", {}, r.user?.name || "–"),
        h("td", {}, badge(label(r.outcome), r.outcome === "SIGNED_IN" ? "good" : "bad")),
        h("td", { class: "small" }, r.ip || "–"),
        h("td", { class: "small" }, fmtDateTime(r.at))))))
      : empty("No sign-ins yet."));
  } catch (e) {
    mount(box, empty(e.message));
  }
}

