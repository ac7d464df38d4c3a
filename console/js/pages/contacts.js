// Contacts: the API's filters as a form, sorting, keyset paging (100k contacts are never
// loaded at once), bulk tag and assign, and the current filter saved as a segment.

import { gql, can } from "../api.js";
import { h, mount, field, select, label, fmtDate, badge, loading, empty, toast, dialog, showError, clearErrors } from "../ui.js";

const PAGE = 25;
const STAGES = ["LEAD", "QUALIFIED", "OPPORTUNITY", "CUSTOMER", "CHURNED", "LOST"];
const SORTS = [["CREATED_AT:DESC", "Newest first"], ["CREATED_AT:ASC", "Oldest first"], ["LAST_NAME:ASC", "Last name A–Z"], ["LAST_NAME:DESC", "Last name Z–A"], ["LIFECYCLE_STAGE:ASC", "Lifecycle stage"]];

let users = null;
// Forgotten on every page of contacts: people are invited and removed while the tab is open,
// and another person may sign in to another workspace in the same tab.
async function loadUsers() {
  users = null;
  if (!users) users = (await gql(`{ users(first: 200, orderBy: [{field: NAME, direction: ASC}]) { nodes { id name } } }`)).users.nodes;
  return users;
}

/** The API's ContactFilter for the form's values. */
export function filterOf(v) {
  const and = [];
  if (v.q) and.push({ or: [{ firstName: { contains: v.q } }, { lastName: { contains: v.q } }, { email: { contains: v.q.toLowerCase() } }] });
  if (v.stage) and.push({ lifecycleStage: { eq: v.stage } });
  if (v.tag) and.push({ tags: { has: v.tag } });
  if (v.owner === "none") and.push({ ownerId: { isNull: true } });
  else if (v.owner) and.push({ ownerId: { eq: v.owner } });
  if (v.company) and.push({ company: { name: { contains: v.company } } });
  if (v.grade) and.push({ leadScore: { grade: { eq: v.grade } } });
  if (v.minScore) and.push({ leadScore: { score: { gte: Number(v.minScore) } } });
  if (v.churn) and.push({ churnRisk: { level: { eq: v.churn } } });
  if (v.attrKey) and.push({ attributes: [{ key: v.attrKey, value: { eq: v.attrValue || "" } }] });
  return and.length ? { and } : null;
}

const KEYS = ["q", "stage", "tag", "owner", "company", "grade", "minScore", "churn", "attrKey", "attrValue", "sort"];

export async function contactsPage(page, params) {
  const values = Object.fromEntries(KEYS.map((k) => [k, params.get(k) || ""]));
  const people = await loadUsers().catch(() => []);
  const input = (name, attrs = {}) => h("input", { name, value: values[name], ...attrs });
  const form = h("form", { class: "filters", id: "contact-filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const q = new URLSearchParams();
    for (const k of KEYS) if (data.get(k)) q.set(k, data.get(k));
    location.hash = `#/contacts${q.toString() ? `?${q}` : ""}`;
  } },
  field("Search", input("q", { type: "search", placeholder: "Name or email" })),
  field("Lifecycle stage", select("stage", [["", "Any"], ...STAGES.map((s) => [s, label(s)])], values.stage)),
  field("Tag", input("tag", { placeholder: "e.g. vip" })),
  field("Owner", select("owner", [["", "Anyone"], ["none", "Nobody"], ...people.map((u) => [u.id, u.name])], values.owner)),
  field("Company", input("company", { placeholder: "Name contains" })),
  field("Lead grade", select("grade", [["", "Any"], ["A", "A"], ["B", "B"], ["C", "C"], ["D", "D"]], values.grade)),
  field("Lead score at least", input("minScore", { type: "number", min: "0", max: "100", step: "1" })),
  field("Churn risk", select("churn", [["", "Any"], ["HIGH", "High"], ["MEDIUM", "Medium"], ["LOW", "Low"]], values.churn)),
  field("Attribute", input("attrKey", { placeholder: "key, e.g. plan" })),
  field("equals", input("attrValue", { placeholder: "value" })),
  field("Sort", select("sort", SORTS, values.sort || "CREATED_AT:DESC")),
  h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Apply"), h("button", { type: "button", onclick: () => { location.hash = "#/contacts"; } }, "Clear")));

  const filter = filterOf(values);
  const [sortField, sortDir] = (values.sort || "CREATED_AT:DESC").split(":");
  const count = h("span", { id: "contact-count", class: "muted" }, "…");
  const saveButton = can("write") ? h("button", { type: "button", id: "save-segment", onclick: () => saveSegment(filter) }, "Save as segment") : null;
  const list = h("div", {}, loading());
  mount(page,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Contacts"), h("div", { class: "sub" }, count)), h("div", { class: "toolbar" }, saveButton)),
    h("section", { class: "panel", "aria-label": "Filters" }, form),
    h("section", { class: "panel", "aria-label": "Contacts" }, list));

  const cursors = [null];
  const selected = new Set();
  let rows = [];
  async function load(at) {
    mount(list, loading());
    let data;
    try {
      data = await gql(`query Contacts($filter: ContactFilter, $after: String, $order: [ContactOrder!]) {
        contacts(first: ${PAGE}, after: $after, filter: $filter, orderBy: $order) {
          totalCount pageInfo { hasNextPage endCursor }
          nodes { id name email lifecycleStage tags createdAt owner { id name } company { name } leadScore { score grade } churnRisk { level } }
        }
      }`, { filter, after: cursors[at], order: [{ field: sortField, direction: sortDir }] });
    } catch (e) {
      mount(list, h("div", { class: "form-error", role: "alert" }, e.message));
      count.textContent = "";
      return;
    }
    const c = data.contacts;
    rows = c.nodes;
    count.textContent = `${c.totalCount.toLocaleString("en-US")} contacts match`;
    if (c.pageInfo.hasNextPage) cursors[at + 1] = c.pageInfo.endCursor;
    const bulk = can("write") ? bulkBar(people, () => rows.filter((r) => selected.has(r.id)), () => load(at)) : null;
    const all = h("input", { type: "checkbox", "aria-label": "Select all on this page", onchange: (e) => {
      for (const r of rows) e.target.checked ? selected.add(r.id) : selected.delete(r.id);
      list.querySelectorAll("tbody input[type=checkbox]").forEach((b) => { b.checked = e.target.checked; });
    } });
    mount(list,
      bulk,
      rows.length ? h("div", { class: "table-wrap" }, h("table", { id: "contacts-table" },
        h("thead", {}, h("tr", {}, can("write") ? h("th", { class: "check" }, all) : null, h("th", {}, "Name"), h("th", {}, "Company"), h("th", {}, "Stage"), h("th", {}, "Lead score"), h("th", {}, "Churn"), h("th", {}, "Owner"), h("th", {}, "Tags"), h("th", {}, "Created"))),
        h("tbody", {}, rows.map((r) => h("tr", {},
          can("write") ? h("td", { class: "check" }, h("input", { type: "checkbox", "aria-label": `Select ${r.name}`, checked: selected.has(r.id), onchange: (e) => (e.target.checked ? selected.add(r.id) : selected.delete(r.id)) })) : null,
          h("td", {}, h("a", { href: `#/contacts/${r.id}` }, r.name || "(no name)"), h("div", { class: "small muted" }, r.email || "")),
          h("td", {}, r.company?.name || "–"),
          h("td", {}, badge(label(r.lifecycleStage), r.lifecycleStage === "CUSTOMER" ? "good" : r.lifecycleStage === "CHURNED" || r.lifecycleStage === "LOST" ? "bad" : "")),
          h("td", { class: "num" }, r.leadScore ? [`${Math.round(r.leadScore.score)}`, r.leadScore.grade ? [" ", badge(`Grade ${r.leadScore.grade}`, r.leadScore.grade === "A" ? "good" : "accent")] : null] : "–"),
          h("td", {}, r.churnRisk ? badge(`${label(r.churnRisk.level)} risk`, r.churnRisk.level === "HIGH" ? "bad" : r.churnRisk.level === "MEDIUM" ? "warn" : "good") : "–"),
          h("td", {}, r.owner?.name || h("span", { class: "muted" }, "Nobody")),
          h("td", {}, r.tags.map((t) => h("span", { class: "tag" }, t))),
          h("td", { class: "small" }, fmtDate(r.createdAt))))))) : empty("No contact matches these filters."),
      h("nav", { class: "pager", "aria-label": "Pages" },
        h("span", {}, `Page ${at + 1}`),
        h("div", { class: "row" },
          h("button", { type: "button", id: "prev-page", disabled: at === 0, onclick: () => load(at - 1) }, "← Previous"),
          h("button", { type: "button", id: "next-page", disabled: !c.pageInfo.hasNextPage, onclick: () => load(at + 1) }, "Next →"))));
  }
  load(0);
}

function bulkBar(people, chosen, reload) {
  const tag = h("input", { name: "bulkTag", placeholder: "Tag to add", "aria-label": "Tag to add to the selected contacts" });
  const owner = select("bulkOwner", [["", "Assign to…"], ...people.map((u) => [u.id, u.name])], "");
  owner.setAttribute("aria-label", "Assign the selected contacts to");
  const run = async (build, done) => {
    const list = chosen();
    if (!list.length) return toast("Select contacts first.", "error");
    const parts = list.map((r, i) => `c${i}: updateContact(id: "${r.id}", input: ${build(r)}) { id }`);
    try {
      await gql(`mutation Bulk { ${parts.join("\n")} }`);
      toast(done(list.length));
      reload();
    } catch (e) {
      toast(e.message, "error");
    }
  };
  return h("div", { class: "row", style: { marginBottom: "12px" }, id: "bulk-actions" },
    tag, h("button", { type: "button", id: "bulk-tag", onclick: () => {
      const t = tag.value.trim();
      if (!t) return toast("Type a tag first.", "error");
      run((r) => `{ tags: ${JSON.stringify([...new Set([...r.tags, t])])} }`, (n) => `Tagged ${n} contacts “${t}”.`);
    } }, "Add tag"),
    owner, h("button", { type: "button", id: "bulk-assign", onclick: () => {
      if (!owner.value) return toast("Choose an owner first.", "error");
      run(() => `{ ownerId: ${JSON.stringify(owner.value)} }`, (n) => `Assigned ${n} contacts.`);
    } }, "Assign"));
}

async function saveSegment(filter) {
  const name = h("input", { name: "name", required: true, placeholder: "e.g. Hot leads in Berlin" });
  const description = h("input", { name: "description" });
  const form = h("form", { onsubmit: (e) => e.preventDefault() }, field("Name", name), field("Description", description),
    h("p", { class: "small muted" }, filter ? "The segment keeps these filters and updates as contacts change." : "No filter is set: the segment holds every contact."));
  setTimeout(() => name.focus(), 0);
  let saved = null;
  await dialog("Save as segment", form, [
    { label: "Cancel", value: "cancel" },
    { label: "Save segment", value: "save", class: "primary", run: async () => {
      clearErrors(form);
      try {
        const data = await gql(`mutation Save($input: SegmentInput!) { createSegment(input: $input) { id name preview(sample: 1) { count } } }`,
          { input: { name: name.value, description: description.value || null, filter } });
        saved = data.createSegment;
        return true;
      } catch (e) {
        showError(form, e);
        return false;
      }
    } },
  ]);
  if (saved) toast(`Segment “${saved.name}” saved: ${saved.preview.count.toLocaleString("en-US")} contacts now.`);
}
