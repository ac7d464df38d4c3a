// Segments: saved contact filters. The list shows how many contacts each holds now and
// which campaigns and sequences use it; the builder writes the API's ContactFilter from
// rules (or as JSON, for filters the rules cannot show) with a live count and sample.

import { gql, can } from "../api.js";
import { h, mount, field, select, label, loading, empty, toast, pageHead, panel, statusBadge, showError, clearErrors, confirm, navigate } from "../ui.js";

const STAGES = ["LEAD", "QUALIFIED", "OPPORTUNITY", "CUSTOMER", "CHURNED", "LOST"];

// One kind of rule: how it reads and writes one condition of a ContactFilter.
const RULES = [
  { key: "stage", text: "Lifecycle stage", ops: [["eq", "is"], ["ne", "is not"]], values: STAGES,
    write: (op, v) => ({ lifecycleStage: { [op]: v } }),
    read: (f) => f.lifecycleStage && one(f.lifecycleStage, ["eq", "ne"]) },
  { key: "stages", text: "Lifecycle stage is one of", ops: [["in", "any of"]], list: true,
    write: (op, v) => ({ lifecycleStage: { in: String(v).split(",").map((x) => x.trim().toUpperCase()).filter(Boolean) } }),
    read: (f) => f.lifecycleStage && Array.isArray(f.lifecycleStage.in) && Object.keys(f.lifecycleStage).length === 1 ? ["in", f.lifecycleStage.in.join(", ")] : null },
  { key: "tag", text: "Tag", ops: [["has", "has"], ["hasNone", "does not have"]],
    write: (op, v) => ({ tags: op === "has" ? { has: v } : { hasNone: [v] } }),
    read: (f) => f.tags && (f.tags.has ? ["has", f.tags.has] : f.tags.hasNone?.length === 1 ? ["hasNone", f.tags.hasNone[0]] : null) },
  { key: "email", text: "Email", ops: [["contains", "contains"], ["eq", "is"]],
    write: (op, v) => ({ email: { [op]: v } }),
    read: (f) => f.email && one(f.email, ["contains", "eq"]) },
  { key: "source", text: "Source", ops: [["eq", "is"], ["contains", "contains"]],
    write: (op, v) => ({ source: { [op]: v } }),
    read: (f) => f.source && one(f.source, ["eq", "contains"]) },
  { key: "leadScore", text: "Lead score", ops: [["gte", "at least"], ["lte", "at most"]], number: true,
    write: (op, v) => ({ leadScore: { score: { [op]: Number(v) } } }),
    read: (f) => f.leadScore?.score && one(f.leadScore.score, ["gte", "lte"]) },
  { key: "grade", text: "Lead grade", ops: [["eq", "is"]], values: ["A", "B", "C", "D"],
    write: (op, v) => ({ leadScore: { grade: { eq: v } } }),
    read: (f) => f.leadScore?.grade && one(f.leadScore.grade, ["eq"]) },
  { key: "churn", text: "Churn risk", ops: [["eq", "is"]], values: ["HIGH", "MEDIUM", "LOW"],
    write: (op, v) => ({ churnRisk: { level: { eq: v } } }),
    read: (f) => f.churnRisk?.level && one(f.churnRisk.level, ["eq"]) },
  { key: "event", text: "Did event", ops: [["30", "in the last 30 days"], ["7", "in the last 7 days"], ["90", "in the last 90 days"]],
    write: (op, v) => ({ events: [{ type: v, withinDays: Number(op) }] }),
    read: (f) => f.events?.length === 1 && !f.events[0].count ? [String(f.events[0].withinDays ?? 30), f.events[0].type] : null },
  { key: "createdAfter", text: "Created after", ops: [["gte", "on or after"]], date: true,
    write: (op, v) => ({ createdAt: { gte: new Date(`${v}T00:00:00Z`).toISOString() } }),
    read: (f) => f.createdAt?.gte && Object.keys(f.createdAt).length === 1 ? ["gte", f.createdAt.gte.slice(0, 10)] : null },
  { key: "permission", text: "May receive marketing email", ops: [["yes", "yes"]], none: true,
    write: () => ({ emailPermission: "MARKETING" }),
    read: (f) => (f.emailPermission === "MARKETING" ? ["yes", ""] : null) },
];

function one(cond, ops) {
  const keys = Object.keys(cond);
  return keys.length === 1 && ops.includes(keys[0]) ? [keys[0], cond[keys[0]]] : null;
}

/** Rules for a saved filter, when every condition is one the builder can show. */
export function rulesOf(filter) {
  if (!filter) return { match: "and", rows: [] };
  const match = filter.and ? "and" : filter.or ? "or" : null;
  if (Object.keys(filter).length !== 1 && match) return null;
  // Several conditions in one object all hold: the same as `and` of each.
  const parts = match ? filter[match] : Object.entries(filter).map(([k, v]) => ({ [k]: v }));
  const rows = [];
  for (const part of parts) {
    if (Object.keys(part).length !== 1) return null;
    const rule = RULES.find((r) => { try { return r.read(part); } catch { return false; } });
    if (!rule) return null;
    const [op, value] = rule.read(part);
    rows.push({ key: rule.key, op, value });
  }
  return { match: match || "and", rows };
}

/** The ContactFilter of rules (null: every contact). */
export function filterOfRules({ match, rows }) {
  const parts = rows.filter((r) => r.value !== "" || RULES.find((x) => x.key === r.key)?.none)
    .map((r) => RULES.find((x) => x.key === r.key).write(r.op, r.value));
  return parts.length ? { [match]: parts } : null;
}

export async function segmentsPage(page) {
  const list = h("div", {}, loading());
  mount(page,
    pageHead("Segments", "Saved audiences. Each is re-evaluated whenever it is used, so it is never stale.",
      can("write") ? h("a", { class: "button primary", href: "#/segments/new", id: "new-segment" }, "New segment") : null),
    panel("All segments", list));
  let segments;
  try {
    segments = (await gql(`{ segments { id name description updatedAt preview(sample: 0) { count } usedBy { kind id name status } } }`)).segments;
  } catch (e) {
    return mount(list, empty(e.message));
  }
  if (!segments.length) return mount(list, empty("No segment yet. Save one from the contact list, or build one here."));
  mount(list, h("div", { class: "table-wrap" }, h("table", { id: "segments-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "right" }, "Contacts now"), h("th", {}, "Used by"))),
    h("tbody", {}, segments.map((s) => h("tr", { "data-segment": s.id },
      h("td", {}, h("a", { href: `#/segments/${s.id}` }, s.name), s.description ? h("div", { class: "small muted" }, s.description) : null),
      h("td", { class: "right num" }, s.preview.count.toLocaleString("en-US")),
      h("td", {}, s.usedBy.length ? s.usedBy.map((u) => h("div", { class: "small" },
        h("a", { href: u.kind === "campaign" ? `#/campaigns/${u.id}` : `#/sequences/${u.id}` }, `${label(u.kind)}: ${u.name}`), " ", statusBadge(u.status)))
        : h("span", { class: "muted small" }, "Nothing yet"))))))));
}

export async function segmentPage(page, id) {
  let seg = { name: "", description: "", filter: null };
  if (id !== "new") {
    try {
      seg = (await gql(`query S($id: ID!) { segment(id: $id) { id name description filter usedBy { kind id name status } } }`, { id })).segment;
    } catch (e) {
      return mount(page, panel("Segment", empty(e.message)));
    }
  }
  const writable = can("write");
  let rules = rulesOf(seg.filter);
  let mode = rules ? "rules" : "json";
  if (!rules) rules = { match: "and", rows: [] };
  const name = h("input", { name: "name", value: seg.name, required: true, placeholder: "e.g. Engaged customers", disabled: !writable });
  const description = h("input", { name: "description", value: seg.description || "", disabled: !writable });
  const json = h("textarea", { name: "filter", rows: 12, class: "code", spellcheck: "false", "aria-label": "Filter as JSON", disabled: !writable });
  json.value = JSON.stringify(seg.filter ?? {}, null, 2);
  const rowsBox = h("div", { class: "rules", id: "segment-rules" });
  const editor = h("div", {});
  const count = h("div", { class: "stat" }, h("span", { class: "value", id: "segment-count" }, "…"), h("span", { class: "label" }, "contacts match now"));
  const sample = h("div", { id: "segment-sample" }, loading());
  let saving = false;
  const form = h("form", { id: "segment-form", onsubmit: async (e) => {
    e.preventDefault();
    if (saving) return;
    saving = true;
    try { await save(); } finally { saving = false; }
  } });

  const current = () => {
    if (mode === "rules") return filterOfRules(rules);
    const text = json.value.trim();
    if (!text || text === "{}") return null;
    return JSON.parse(text);
  };
  let timer = null;
  let ticket = 0;
  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++ticket;
      let filter;
      try {
        filter = current();
      } catch (e) {
        count.querySelector(".value").textContent = "–";
        return mount(sample, h("div", { class: "form-error", role: "alert" }, `The JSON does not parse: ${e.message}`));
      }
      try {
        const data = await gql(`query P($f: ContactFilter) { contacts(first: 5, filter: $f) { totalCount nodes { id name email lifecycleStage leadScore { score } } } }`, { f: filter });
        if (mine !== ticket) return;
        count.querySelector(".value").textContent = data.contacts.totalCount.toLocaleString("en-US");
        mount(sample, data.contacts.nodes.length ? h("ul", { class: "plain" }, data.contacts.nodes.map((c) => h("li", {},
          h("a", { href: `#/contacts/${c.id}` }, c.name || c.email || `#${c.id}`), h("span", { class: "muted small" }, ` · ${label(c.lifecycleStage)}${c.leadScore ? ` · score ${Math.round(c.leadScore.score)}` : ""}`))))
          : empty("Nobody matches yet."));
      } catch (e) {
        if (mine !== ticket) return;
        count.querySelector(".value").textContent = "–";
        mount(sample, h("div", { class: "form-error", role: "alert" }, e.message));
      }
    }, 350);
  };

  const drawRules = () => {
    const matchSelect = select("match", [["and", "all"], ["or", "any"]], rules.match);
    matchSelect.setAttribute("aria-label", "Match all or any rule");
    matchSelect.disabled = !writable;
    matchSelect.addEventListener("change", () => { rules.match = matchSelect.value; refresh(); });
    mount(rowsBox,
      h("div", { class: "row small muted", style: { marginBottom: "8px" } }, "Contacts that match", matchSelect, "of these rules:"),
      rules.rows.map((r, i) => ruleRow(r, writable, () => refresh(), () => { rules.rows.splice(i, 1); drawRules(); refresh(); })),
      rules.rows.length ? null : h("div", { class: "muted small", style: { padding: "6px 0" } }, "No rule: every contact."),
      writable ? h("button", { type: "button", id: "add-rule", onclick: () => { rules.rows.push({ key: "stage", op: "eq", value: "LEAD" }); drawRules(); refresh(); } }, "+ Add rule") : null);
  };
  const drawEditor = () => {
    mount(editor, mode === "rules" ? rowsBox : field("Filter (the API's ContactFilter as JSON)", json, "Every condition of the contacts filter is available here: events, orders, deals, consent, plugin scores, and/or/not."));
    if (mode === "rules") drawRules();
  };
  json.addEventListener("input", refresh);
  const toggle = h("button", { type: "button", class: "ghost", id: "toggle-json", onclick: () => {
    if (mode === "rules") {
      json.value = JSON.stringify(filterOfRules(rules) ?? {}, null, 2);
      mode = "json";
    } else {
      let raw;
      try { raw = JSON.parse(json.value || "{}"); } catch { raw = undefined; }
      const parsed = raw === undefined ? null : rulesOf(raw && Object.keys(raw).length ? raw : null);
      if (!parsed) return toast("This filter has conditions the rules cannot show; keep editing it as JSON.", "error");
      rules = parsed;
      mode = "rules";
    }
    toggle.textContent = mode === "rules" ? "Edit as JSON" : "Edit as rules";
    drawEditor();
  } }, mode === "rules" ? "Edit as JSON" : "Edit as rules");

  async function save() {
    clearErrors(form);
    let filter;
    try {
      filter = current();
    } catch (e) {
      return showError(form, { field: "filter", message: `the JSON does not parse: ${e.message}` });
    }
    const input = { name: name.value, description: description.value || null, filter };
    try {
      if (id === "new") {
        const created = (await gql(`mutation C($input: SegmentInput!) { createSegment(input: $input) { id name } }`, { input })).createSegment;
        toast(`Segment “${created.name}” saved.`);
        navigate(`#/segments/${created.id}`);
      } else {
        await gql(`mutation U($id: ID!, $input: SegmentInput!) { updateSegment(id: $id, input: $input) { id } }`, { id, input });
        toast("Segment saved.");
      }
    } catch (e) {
      showError(form, e);
    }
  }

  mount(form,
    field("Name", name), field("Description", description),
    h("div", { class: "panel-head" }, h("h3", { style: { margin: 0 } }, "Who is in it"), toggle),
    editor,
    writable ? h("div", { class: "row", style: { marginTop: "16px" } },
      h("button", { type: "submit", class: "primary", id: "save-segment", "data-busy": null }, id === "new" ? "Create segment" : "Save segment"),
      id !== "new" ? h("button", { type: "button", class: "danger", onclick: async () => {
        if (!(await confirm("Delete segment", `“${seg.name}” will be deleted. Campaigns already sent keep their recipients.`, "Delete", "danger solid"))) return;
        try {
          await gql(`mutation D($id: ID!) { deleteSegment(id: $id) }`, { id });
          toast("Segment deleted.");
          navigate("#/segments");
        } catch (e) {
          toast(e.message, "error");
        }
      } }, "Delete") : null) : null);
  drawEditor();
  mount(page,
    pageHead(id === "new" ? "New segment" : seg.name, h("a", { href: "#/segments" }, "← All segments")),
    h("div", { class: "grid side-main wide-side" },
      panel("Definition", form),
      h("div", { class: "stack" },
        panel("Live preview", h("div", {}, count, h("h3", { style: { marginTop: "14px" } }, "Sample"), sample)),
        seg.usedBy ? panel("Used by", seg.usedBy.length ? h("ul", { class: "plain" }, seg.usedBy.map((u) => h("li", {},
          h("a", { href: u.kind === "campaign" ? `#/campaigns/${u.id}` : `#/sequences/${u.id}` }, `${label(u.kind)}: ${u.name}`), " ", statusBadge(u.status))))
          : empty("No campaign or sequence uses it yet.")) : null)));
  refresh();
}

function ruleRow(row, writable, changed, remove) {
  const box = h("div", { class: "rule" });
  const draw = () => {
    const rule = RULES.find((r) => r.key === row.key);
    const kind = select("ruleField", RULES.map((r) => [r.key, r.text]), row.key);
    kind.setAttribute("aria-label", "Field");
    const op = select("ruleOp", rule.ops, row.op);
    op.setAttribute("aria-label", "Condition");
    let value;
    if (rule.none) value = h("span", {});
    else if (rule.values) value = select("ruleValue", rule.values.map((v) => [v, label(v)]), row.value);
    else value = h("input", { name: "ruleValue", value: row.value, type: rule.number ? "number" : rule.date ? "date" : "text", placeholder: rule.key === "event" ? "event type, e.g. pricing_viewed" : rule.list ? "e.g. LEAD, QUALIFIED" : "" });
    value.setAttribute?.("aria-label", "Value");
    for (const el of [kind, op, value]) el.disabled = !writable;
    kind.addEventListener("change", () => {
      const next = RULES.find((r) => r.key === kind.value);
      row.key = next.key;
      row.op = next.ops[0][0];
      row.value = next.values ? next.values[0] : "";
      draw();
      changed();
    });
    op.addEventListener("change", () => { row.op = op.value; changed(); });
    value.addEventListener?.("input", () => { row.value = value.value; changed(); });
    value.addEventListener?.("change", () => { row.value = value.value; changed(); });
    mount(box, kind, op, value, writable ? h("button", { type: "button", class: "ghost", "aria-label": "Remove rule", onclick: remove }, "✕") : null);
  };
  draw();
  return box;
}
