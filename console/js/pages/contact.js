// Customer 360: one contact's story (timeline), deals, scores with their reasons, next
// best actions, consent, sequences; edit, merge duplicates, erase.

import { gql, can, canChange } from "../api.js";
import { h, mount, field, select, label, fmtDate, fmtDateTime, fmtMoney, fmtPercent, badge, loading, empty, toast, dialog, confirm, showError, clearErrors } from "../ui.js";
import { go } from "../app.js";

const STAGES = ["LEAD", "QUALIFIED", "OPPORTUNITY", "CUSTOMER", "CHURNED", "LOST"];

const QUERY = `query Contact360($id: ID!) {
  contact(id: $id) {
    id name firstName lastName email phone lifecycleStage tags source createdAt timezone
    owner { id name } company { id name }
    leadScore { score grade reasons { feature contribution } model { version } }
    churnRisk { risk level method }
    clv { probabilityAlive expectedPurchases expectedValue orders }
    rfm { recency frequency monetary segment }
    scores { source name score grade }
    nextBestActions { id kind priority rationale status source params { key value } }
    consentHistory { id purpose status lawfulBasis source recordedAt }
    emailPermission(purpose: MARKETING) { allowed reason }
    sequenceEnrollments { id status currentStep enrolledAt exitReason sequence { name } }
    deals(first: 20) { nodes { id name amount currency status stage { name } owner { name } } }
    timeline(first: 40) { edges { occurredAt node { __typename
      ... on Activity { activityKind: kind activitySubject: subject direction author { name } }
      ... on Order { total currency orderStatus: status }
      ... on Inquiry { inquirySubject: subject channel inquiryStatus: status }
      ... on Task { title taskStatus: status dueAt }
      ... on Event { type }
      ... on LifecycleChange { fromStage toStage }
      ... on ConsentRecord { purpose consentStatus: status }
      ... on EmailSent { emailKind: kind state opens clicks }
    } } }
  }
}`;

export async function contactPage(page, id) {
  mount(page, loading());
  let data;
  try {
    data = await gql(QUERY, { id });
  } catch (e) {
    mount(page, h("div", { class: "panel" }, h("h1", {}, "Contact"), h("p", { role: "alert" }, e.message), h("a", { href: "#/contacts" }, "Back to contacts")));
    return;
  }
  const c = data.contact;
  const editable = canChange(c.owner?.id);
  const reload = () => contactPage(page, id);
  mount(page,
    h("div", { class: "page-head" },
      h("div", {}, h("div", { class: "small" }, h("a", { href: "#/contacts" }, "← Contacts")), h("h1", {}, c.name || "(no name)"),
        h("div", { class: "sub" }, [c.email, c.company?.name, `owned by ${c.owner?.name || "nobody"}`].filter(Boolean).join(" · "))),
      h("div", { class: "toolbar" },
        editable ? h("button", { type: "button", id: "edit-contact", onclick: () => edit(c, reload) }, "Edit") : null,
        // Looked for on demand: matching similar names costs a scan of the workspace.
        editable ? h("button", { type: "button", id: "merge-duplicates", onclick: () => merge(c, reload) }, "Find duplicates") : null,
        can("admin") ? h("button", { type: "button", class: "danger", id: "erase-contact", onclick: () => erase(c) }, "Erase") : null)),
    h("div", { class: "grid side-main" },
      h("div", {},
        scoresPanel(c),
        actionsPanel(c, editable, reload),
        detailsPanel(c),
        consentPanel(c)),
      h("div", {},
        dealsPanel(c),
        sequencesPanel(c),
        timelinePanel(c))));
}

function panel(title, ...content) {
  const id = `p-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), content);
}

function scoresPanel(c) {
  const s = c.leadScore;
  const plugins = c.scores.filter((x) => x.source === "PLUGIN");
  return panel("Scores",
    s ? h("div", { id: "lead-score" },
      h("div", { class: "row" }, h("span", { class: "score-big" }, Math.round(s.score)), s.grade ? badge(`Grade ${s.grade}`, s.grade === "A" ? "good" : "accent") : null, h("span", { class: "muted small" }, "lead score")),
      s.reasons.length ? h("ul", { class: "reasons", "aria-label": "Top reasons" }, s.reasons.slice(0, 5).map((r) =>
        h("li", {}, h("span", {}, r.feature.replaceAll("_", " ")), h("span", { class: r.contribution >= 0 ? "up num" : "down num" }, `${r.contribution >= 0 ? "▲ +" : "▼ "}${r.contribution.toFixed(2)}`)))) : null)
      : h("p", { class: "muted" }, "No lead score yet."),
    h("dl", { class: "kv", style: { marginTop: "12px" } },
      h("dt", {}, "Churn risk"), h("dd", {}, c.churnRisk ? [badge(label(c.churnRisk.level), c.churnRisk.level === "HIGH" ? "bad" : c.churnRisk.level === "MEDIUM" ? "warn" : "good"), ` ${fmtPercent(c.churnRisk.risk)}`] : "–"),
      h("dt", {}, "Lifetime value"), h("dd", {}, c.clv ? [c.clv.expectedValue !== null ? fmtMoney(c.clv.expectedValue, "USD") : `${c.clv.expectedPurchases.toFixed(1)} purchases`, h("span", { class: "muted small" }, ` · ${fmtPercent(c.clv.probabilityAlive)} alive`)] : "–"),
      h("dt", {}, "RFM"), h("dd", {}, c.rfm ? [c.rfm.segment, h("span", { class: "muted small" }, ` · R${c.rfm.recency} F${c.rfm.frequency} M${c.rfm.monetary}`)] : "–"),
      plugins.map((p) => [h("dt", {}, p.name), h("dd", { class: "num" }, `${p.score.toFixed(1)}${p.grade ? ` (${p.grade})` : ""}`)])));
}

function actionsPanel(c, editable, reload) {
  const open = c.nextBestActions.filter((a) => a.status === "OPEN");
  return panel("Next best actions",
    open.length ? open.map((a) => h("div", { class: "action", "data-action": a.id },
      h("div", { class: "row" }, badge(label(a.kind), "accent"), h("span", { class: "small muted" }, `priority ${a.priority} · ${a.source}`)),
      h("p", { style: { margin: "6px 0" } }, a.rationale),
      a.params.length ? h("div", { class: "small muted" }, a.params.map((p) => `${p.key}: ${p.value}`).join(" · ")) : null,
      // Answering acts on the contact: shown to those who may change it.
      editable ? h("div", { class: "row", style: { marginTop: "8px" } },
        h("button", { type: "button", class: "primary", "data-accept": a.id, "aria-label": `Accept: ${a.rationale}`, onclick: () => respond(a, true, reload) }, "Accept"),
        h("button", { type: "button", "data-reject": a.id, "aria-label": `Reject: ${a.rationale}`, onclick: () => respond(a, false, reload) }, "Reject")) : null))
      : h("p", { class: "muted" }, "Nothing recommended right now."));
}

async function respond(a, accept, reload) {
  try {
    const data = await gql(accept ? `mutation A($id: ID!) { acceptAction(id: $id) { status taskId } }` : `mutation R($id: ID!) { rejectAction(id: $id) { status } }`, { id: a.id });
    const r = accept ? data.acceptAction : data.rejectAction;
    toast(accept ? `Accepted${r.taskId ? ": a task was created" : ""}.` : "Rejected.");
    reload();
  } catch (e) {
    toast(e.message, "error");
  }
}

function detailsPanel(c) {
  return panel("Details", h("dl", { class: "kv" },
    h("dt", {}, "Stage"), h("dd", {}, label(c.lifecycleStage)),
    h("dt", {}, "Email"), h("dd", {}, c.email || "–"),
    h("dt", {}, "Phone"), h("dd", {}, c.phone || "–"),
    h("dt", {}, "Company"), h("dd", {}, c.company?.name || "–"),
    h("dt", {}, "Owner"), h("dd", {}, c.owner?.name || "Nobody"),
    h("dt", {}, "Source"), h("dd", {}, c.source || "–"),
    h("dt", {}, "Tags"), h("dd", {}, c.tags.length ? c.tags.map((t) => h("span", { class: "tag" }, t)) : "–"),
    h("dt", {}, "Since"), h("dd", {}, fmtDate(c.createdAt))));
}

function consentPanel(c) {
  const p = c.emailPermission;
  return panel("Consent",
    h("p", {}, p.allowed ? badge("May receive marketing email", "good") : badge("No marketing email", "bad"), p.reason ? h("span", { class: "small muted" }, ` ${p.reason}`) : null),
    c.consentHistory.length ? h("ul", { class: "timeline", "aria-label": "Consent history" }, c.consentHistory.slice(0, 8).map((r) => h("li", {},
      h("span", { class: "dot", "aria-hidden": "true" }, "✓"),
      h("div", {}, `${label(r.purpose)}: ${label(r.status)}`, h("div", { class: "small muted" }, [label(r.lawfulBasis), r.source].filter(Boolean).join(" · "))),
      h("span", { class: "when" }, fmtDate(r.recordedAt))))) : h("p", { class: "muted small" }, "No consent recorded."));
}

function dealsPanel(c) {
  const deals = c.deals.nodes;
  return panel("Deals", deals.length ? h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Deal"), h("th", {}, "Stage"), h("th", {}, "Owner"), h("th", { class: "right" }, "Amount"))),
    h("tbody", {}, deals.map((d) => h("tr", {},
      h("td", {}, h("a", { href: `#/board?deal=${d.id}` }, d.name)),
      h("td", {}, d.status === "OPEN" ? d.stage?.name || "–" : badge(label(d.status), d.status === "WON" ? "good" : "bad")),
      h("td", {}, d.owner?.name || "–"),
      h("td", { class: "right num" }, fmtMoney(d.amount, d.currency)))))))
    : h("p", { class: "muted" }, "No deals."));
}

function sequencesPanel(c) {
  if (!c.sequenceEnrollments.length) return null;
  return panel("Sequences", h("ul", { class: "timeline" }, c.sequenceEnrollments.map((e) => h("li", {},
    h("span", { class: "dot", "aria-hidden": "true" }, "↻"),
    h("div", {}, e.sequence.name, " ", badge(label(e.status), e.status === "ACTIVE" ? "accent" : ""), h("div", { class: "small muted" }, `at step “${e.currentStep}”${e.exitReason ? ` · ${e.exitReason}` : ""}`)),
    h("span", { class: "when" }, fmtDate(e.enrolledAt))))));
}

const ICONS = { Activity: "✎", Order: "$", Inquiry: "?", Task: "☑", Event: "•", LifecycleChange: "↗", ConsentRecord: "✓", EmailSent: "✉" };

function describe(n) {
  switch (n.__typename) {
    case "Activity": return [h("strong", {}, label(n.activityKind)), n.activitySubject ? ` — ${n.activitySubject}` : "", n.author ? h("div", { class: "small muted" }, `by ${n.author.name}`) : null];
    case "Order": return [h("strong", {}, "Order"), ` ${fmtMoney(n.total, n.currency)} · ${label(n.orderStatus)}`];
    case "Inquiry": return [h("strong", {}, "Inquiry"), ` — ${n.inquirySubject} (${label(n.channel)}, ${label(n.inquiryStatus)})`];
    case "Task": return [h("strong", {}, "Task"), ` — ${n.title} · ${label(n.taskStatus)}`];
    case "Event": return [h("strong", {}, "Event"), ` ${n.type}`];
    case "LifecycleChange": return [h("strong", {}, "Stage"), ` ${n.fromStage ? label(n.fromStage) : "new"} → ${label(n.toStage)}`];
    case "ConsentRecord": return [h("strong", {}, "Consent"), ` ${label(n.purpose)}: ${label(n.consentStatus)}`];
    case "EmailSent": return [h("strong", {}, `${label(n.emailKind)} email`), ` ${label(n.state)} · ${n.opens} opens · ${n.clicks} clicks`];
    default: return n.__typename;
  }
}

function timelinePanel(c) {
  const edges = c.timeline.edges;
  return panel("Timeline", edges.length ? h("ul", { class: "timeline", id: "timeline" }, edges.map((e) => h("li", {},
    h("span", { class: "dot", "aria-hidden": "true" }, ICONS[e.node.__typename] || "•"),
    h("div", {}, describe(e.node)),
    h("span", { class: "when" }, fmtDateTime(e.occurredAt))))) : empty("Nothing has happened yet."));
}

async function edit(c, reload) {
  const users = (await gql(`{ users(first: 200, orderBy: [{field: NAME, direction: ASC}]) { nodes { id name } } }`)).users.nodes;
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    h("div", { class: "grid two" }, field("First name", h("input", { name: "firstName", value: c.firstName })), field("Last name", h("input", { name: "lastName", value: c.lastName }))),
    field("Email", h("input", { name: "email", type: "email", value: c.email || "" })),
    field("Phone", h("input", { name: "phone", value: c.phone || "" })),
    h("div", { class: "grid two" },
      field("Lifecycle stage", select("lifecycleStage", STAGES.map((s) => [s, label(s)]), c.lifecycleStage)),
      field("Owner", select("ownerId", [["", "Nobody"], ...users.map((u) => [u.id, u.name])], c.owner?.id || ""))),
    field("Tags", h("input", { name: "tags", value: c.tags.join(", ") }), "Separated by commas."));
  await dialog("Edit contact", form, [
    { label: "Cancel", value: "cancel" },
    { label: "Save", value: "save", class: "primary", run: async () => {
      clearErrors(form);
      const v = Object.fromEntries(new FormData(form));
      const input = {
        firstName: v.firstName, lastName: v.lastName, email: v.email || null, phone: v.phone || null,
        lifecycleStage: v.lifecycleStage, ownerId: v.ownerId || null,
        tags: v.tags.split(",").map((t) => t.trim()).filter(Boolean),
      };
      try {
        await gql(`mutation Edit($id: ID!, $input: ContactInput!) { updateContact(id: $id, input: $input) { id } }`, { id: c.id, input });
        toast("Saved.");
        reload();
        return true;
      } catch (e) {
        showError(form, e);
        return false;
      }
    } },
  ]);
}

async function merge(c, reload) {
  let groups;
  try {
    groups = (await gql(`query D($id: ID!) { findDuplicates(contactId: $id, limit: 5) { reason contacts { id name email createdAt } } }`, { id: c.id })).findDuplicates;
  } catch (e) {
    toast(e.message, "error");
    return;
  }
  const others = new Map();
  for (const g of groups) for (const x of g.contacts) if (x.id !== c.id) others.set(x.id, { ...x, reason: g.reason });
  const boxes = [...others.values()].map((x) => h("label", { class: "row", style: { fontWeight: 400 } },
    h("input", { type: "checkbox", value: x.id, checked: true }), `${x.name} · ${x.email || "no email"} · ${label(x.reason)}`));
  if (!boxes.length) {
    toast(`Nobody looks like ${c.name}.`);
    return;
  }
  const body = h("div", {}, h("p", {}, `These look like ${c.name}. Merging moves their history, deals and consent to ${c.name} and removes them.`), boxes);
  const choice = await dialog("Merge duplicates", body, [{ label: "Cancel", value: "cancel" }, { label: "Merge", value: "merge", class: "primary" }]);
  if (choice !== "merge") return;
  const ids = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
  if (!ids.length) return;
  try {
    await gql(`mutation M($id: ID!, $ids: [ID!]!) { mergeContacts(survivorId: $id, mergedIds: $ids) { id } }`, { id: c.id, ids });
    toast(`Merged ${ids.length} contacts.`);
    reload();
  } catch (e) {
    toast(e.message, "error");
  }
}

async function erase(c) {
  const typed = h("input", { name: "confirm", autocomplete: "off" });
  const form = h("form", { onsubmit: (e) => e.preventDefault() },
    h("p", {}, `Erasing deletes ${c.name} and everything personal attached (activities, events, consent proof) for good. It cannot be undone.`),
    field(`Type “${c.name}” to confirm`, typed));
  await dialog("Erase contact", form, [
    { label: "Cancel", value: "cancel" },
    { label: "Erase for good", value: "erase", class: "danger solid", run: async () => {
      clearErrors(form);
      if (typed.value.trim() !== c.name.trim()) {
        showError(form, { field: "confirm", message: "The name does not match." });
        return false;
      }
      try {
        await gql(`mutation E($id: ID!) { deleteContact(id: $id, hard: true) }`, { id: c.id });
        toast("Erased.");
        go("#/contacts");
        return true;
      } catch (e) {
        showError(form, e);
        return false;
      }
    } },
  ]);
}
