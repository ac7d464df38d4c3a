// Drip sequences: the list, and the editor — the step graph drawn as nodes and edges,
// an inspector for the chosen step and for the sequence's settings, validation errors
// pinned to the step they name, JSON import and export, versions with a diff, migrating
// enrollments, live per-step numbers on the graph, and the enrollments.

import { gql, can } from "../api.js";
import { h, mount, field, select, label, fmtDateTime, loading, empty, toast, pageHead, panel, statusBadge, every, confirm, dialog, navigate, latest, once } from "../ui.js";

const KINDS = [["wait", "Wait"], ["sendEmail", "Send email"], ["branch", "Branch"], ["plugin", "Ask a plugin"], ["updateContact", "Update contact"], ["createTask", "Create task"], ["enroll", "Enroll in sequence"], ["exit", "Exit"]];
const ICON = { wait: "◷", sendEmail: "✉", branch: "◇", plugin: "⚙", updateContact: "✎", createTask: "☑", enroll: "⇢", exit: "■" };
const STAGES = ["lead", "qualified", "opportunity", "customer", "churned", "lost"];

export async function sequencesPage(page) {
  const list = h("div", {}, loading());
  mount(page,
    pageHead("Sequences", "Drip email and follow-up, step by step, for each contact enrolled.",
      can("write") ? h("a", { class: "button primary", href: "#/sequences/new", id: "new-sequence" }, "New sequence") : null),
    panel("All sequences", list));
  let rows;
  try {
    rows = (await gql(`{ sequences { id name status version activatedAt stats { step entered current } } }`)).sequences;
  } catch (e) {
    return mount(list, empty(e.message));
  }
  if (!rows.length) return mount(list, empty("No sequence yet."));
  mount(list, h("div", { class: "table-wrap" }, h("table", { id: "sequences-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Status"), h("th", { class: "right" }, "Version"), h("th", { class: "right" }, "In it now"), h("th", {}, "Active since"))),
    h("tbody", {}, rows.map((s) => h("tr", { "data-sequence": s.id },
      h("td", {}, h("a", { href: `#/sequences/${s.id}` }, s.name)),
      h("td", {}, statusBadge(s.status)),
      h("td", { class: "right num" }, s.version),
      h("td", { class: "right num" }, s.stats.reduce((n, x) => n + x.current, 0).toLocaleString("en-US")),
      h("td", { class: "small" }, s.activatedAt ? fmtDateTime(s.activatedAt) : "–")))))));
}

/** A new sequence: three steps to start from. */
function starter() {
  return {
    name: "", fromEmail: "", triggers: [], allowReentry: false, exitOnReply: true, start: "welcome",
    steps: [
      { id: "welcome", kind: "sendEmail", template: "", next: "wait" },
      { id: "wait", kind: "wait", duration: "3d", next: "done" },
      { id: "done", kind: "exit", reason: "finished" },
    ],
  };
}

/** Where each step sits: rows by distance from the start, unreachable steps last. */
export function layout(def) {
  const byId = new Map(def.steps.map((s) => [s.id, s]));
  const depth = new Map();
  const queue = [];
  if (byId.has(def.start)) { depth.set(def.start, 0); queue.push(def.start); }
  while (queue.length) {
    const id = queue.shift();
    for (const [to] of edgesOf(byId.get(id))) {
      if (byId.has(to) && !depth.has(to)) { depth.set(to, depth.get(id) + 1); queue.push(to); }
    }
  }
  const rows = [];
  const last = Math.max(-1, ...depth.values()) + 1;
  for (const s of def.steps) {
    const d = depth.has(s.id) ? depth.get(s.id) : last;
    (rows[d] ||= []).push(s.id);
  }
  const pos = new Map();
  rows.forEach((ids, y) => ids.forEach((id, x) => pos.set(id, { x, y, of: ids.length })));
  return { pos, rows: rows.length };
}

/** A step's outgoing edges: [target, label]. */
export function edgesOf(step) {
  if (!step) return [];
  if (step.kind === "branch") return [[step.then, "yes"], [step.else, "no"]].filter(([t]) => t);
  if (step.kind === "plugin") return [[step.then, `≥ ${step.gte ?? "?"}`], [step.else, "else"]].filter(([t]) => t);
  return step.next ? [[step.next, ""]] : [];
}

/** What changed between two definitions, step by step and setting by setting. */
export function diff(a, b) {
  const out = [];
  const settings = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => k !== "steps"));
  for (const k of settings) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ kind: "setting", what: k, from: a[k], to: b[k] });
  const old = new Map(a.steps.map((s) => [s.id, s]));
  const now = new Map(b.steps.map((s) => [s.id, s]));
  for (const [id, s] of now) {
    if (!old.has(id)) out.push({ kind: "added", what: id, to: s });
    else if (JSON.stringify(old.get(id)) !== JSON.stringify(s)) out.push({ kind: "changed", what: id, from: old.get(id), to: s });
  }
  for (const [id, s] of old) if (!now.has(id)) out.push({ kind: "removed", what: id, from: s });
  return out;
}

export async function sequencePage(page, id) {
  let seq = null;
  let def = starter();
  const meta = await gql(`{ emailTemplates { id name } segments { id name } sequences { id name } plugins { name } }`).catch(() => ({ emailTemplates: [], segments: [], sequences: [], plugins: [] }));
  if (id !== "new") {
    try {
      seq = (await gql(`query S($id: ID!) { sequence(id: $id) { id name status version definition versions { version createdAt } } }`, { id })).sequence;
      def = structuredClone(seq.definition);
    } catch (e) {
      return mount(page, panel("Sequence", empty(e.message)));
    }
  }
  const writable = can("write");
  let chosen = def.start;
  let stats = new Map();
  let problems = new Map();
  let general = [];
  const canvas = h("div", { class: "graph", id: "sequence-graph" });
  const inspector = h("div", { id: "step-inspector" });
  const settingsBox = h("div", { id: "sequence-settings" });
  const errorsBox = h("div", { id: "sequence-errors" });
  const head = h("div", {});

  const drawGraph = () => {
    // Redrawing replaces the node buttons: the one that had focus gets it back.
    const focused = canvas.contains(document.activeElement) ? document.activeElement.dataset?.step : null;
    const { pos, rows } = layout(def);
    const W = 230, H = 92, GX = 40, GY = 56;
    const widest = Math.max(1, ...[...pos.values()].map((p) => p.of));
    const width = widest * (W + GX) + GX;
    const height = rows * (H + GY) + GY;
    const at = (id) => {
      const p = pos.get(id);
      const rowWidth = p.of * (W + GX) - GX;
      return { left: (width - rowWidth) / 2 + p.x * (W + GX), top: GY / 2 + p.y * (H + GY) };
    };
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("class", "edges");
    const byId = new Map(def.steps.map((s) => [s.id, s]));
    for (const s of def.steps) {
      for (const [to, text] of edgesOf(s)) {
        if (!byId.has(to)) continue;
        const a = at(s.id), b = at(to);
        const x1 = a.left + W / 2 + (text === "yes" ? -40 : text === "no" ? 40 : 0), y1 = a.top + H;
        const x2 = b.left + W / 2, y2 = b.top;
        const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
        const back = y2 <= y1;
        const d = back
          ? `M${x1},${y1} C${x1 + 140},${y1 + 60} ${x2 + 140},${y2 - 60} ${x2},${y2}`
          : `M${x1},${y1} C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2} ${x2},${y2}`;
        path.setAttribute("d", d);
        path.setAttribute("class", `edge ${text}`);
        path.setAttribute("marker-end", "url(#arrow)");
        svg.append(path);
        if (text) {
          const t = document.createElementNS("http://www.w3.org/2000/svg", "text");
          t.setAttribute("x", x1 + (text === "yes" ? -8 : 8));
          t.setAttribute("y", y1 + 16);
          t.setAttribute("text-anchor", text === "yes" ? "end" : "start");
          t.setAttribute("class", `edge-label ${text}`);
          t.textContent = text;
          svg.append(t);
        }
      }
    }
    const defs = document.createElementNS("http://www.w3.org/2000/svg", "defs");
    defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8b93a7"/></marker>';
    svg.prepend(defs);
    const nodes = def.steps.map((s) => {
      const p = at(s.id);
      const st = stats.get(s.id);
      const problem = problems.get(s.id);
      return h("button", { type: "button", class: `node ${s.kind}${chosen === s.id ? " chosen" : ""}${problem ? " invalid" : ""}${s.id === def.start ? " start" : ""}`,
        style: { left: `${p.left}px`, top: `${p.top}px`, width: `${W}px`, height: `${H}px` }, "data-step": s.id, "aria-pressed": chosen === s.id ? "true" : "false",
        "aria-label": `Step ${s.id}: ${label(s.kind)}${problem ? `, error: ${problem}` : ""}`,
        onclick: () => { chosen = s.id; drawGraph(); drawInspector(); } },
      h("div", { class: "node-head" }, h("span", { class: "node-icon", "aria-hidden": "true" }, ICON[s.kind] || "•"), h("strong", {}, s.id), s.id === def.start ? h("span", { class: "badge accent" }, "start") : null),
      h("div", { class: "node-sub" }, summary(s, meta)),
      st ? h("div", { class: "node-stats", "data-stats": s.id }, `${st.entered} in · ${st.current} now · ${st.completed} done`) : null,
      st && (s.kind === "sendEmail" || st.exits.length) ? h("div", { class: "node-stats" },
        s.kind === "sendEmail" ? `✉ ${st.emailsSent} sent · ${st.opens} opened · ${st.clicks} clicked` : "",
        st.exits.length ? `${s.kind === "sendEmail" ? " · " : ""}exits: ${st.exits.map((e) => `${e.reason} ${e.count}`).join(", ")}` : "") : null,
      problem ? h("div", { class: "node-error", role: "alert" }, problem) : null);
    });
    mount(canvas, h("div", { class: "graph-inner", style: { width: `${width}px`, height: `${height}px` } }, svg, nodes));
    if (focused) canvas.querySelector(`.node[data-step="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
  };

  const stepIds = () => def.steps.map((s) => [s.id, s.id]);
  const target = (name, value, text) => {
    const el = select(name, [["", "— end here —"], ...stepIds()], value || "");
    el.disabled = !writable;
    return field(text, el);
  };
  const drawInspector = () => {
    const s = def.steps.find((x) => x.id === chosen);
    if (!s) return mount(inspector, empty("Choose a step on the graph."));
    const set = (key, value) => {
      if (value === "" || value === null || value === undefined) delete s[key];
      else s[key] = value;
      drawGraph();
    };
    const input = (key, attrs = {}) => {
      const el = h("input", { name: key, value: s[key] ?? "", disabled: !writable, ...attrs });
      el.addEventListener("change", () => set(key, attrs.type === "number" ? (el.value === "" ? "" : Number(el.value)) : el.value));
      return el;
    };
    const pick = (key, options) => {
      const el = select(key, options, s[key] ?? "");
      el.disabled = !writable;
      el.addEventListener("change", () => set(key, el.value));
      return el;
    };
    const idInput = h("input", { name: "stepId", value: s.id, disabled: !writable, pattern: "[A-Za-z0-9_\\-]+" });
    idInput.addEventListener("change", () => {
      const next = idInput.value.trim();
      if (!next || def.steps.some((x) => x.id === next)) { idInput.value = s.id; return toast("Step ids are unique and not empty.", "error"); }
      for (const x of def.steps) for (const k of ["next", "then", "else"]) if (x[k] === s.id) x[k] = next;
      if (def.start === s.id) def.start = next;
      s.id = next;
      chosen = next;
      drawGraph();
      drawInspector();
      drawSettings();
    });
    const kind = select("kind", KINDS, s.kind);
    kind.disabled = !writable;
    kind.addEventListener("change", () => {
      const keep = { id: s.id, kind: kind.value };
      const next = s.next || s.then;
      for (const k of Object.keys(s)) delete s[k];
      Object.assign(s, keep, kind.value === "exit" ? {} : kind.value === "branch" ? { if: { tag: "" }, then: next || "" } : kind.value === "plugin" ? { plugin: meta.plugins[0]?.name || "", gte: 50, then: next || "" } : { next });
      if (kind.value === "wait") s.duration = "1d";
      if (kind.value === "sendEmail") s.template = meta.emailTemplates[0]?.name || "";
      if (kind.value === "createTask") s.title = "Follow up";
      if (kind.value === "enroll") s.sequence = meta.sequences[0]?.name || "";
      drawGraph();
      drawInspector();
    });
    const parts = [field("Step id", idInput), field("Kind", kind)];
    if (s.kind === "wait") {
      parts.push(field("Wait for", input("duration", { placeholder: "e.g. 2d, 6h, 30m" }), "Or leave empty and wait until a window, below."));
      const until = s.until || {};
      const ws = h("input", { name: "untilStart", value: until.start || "", placeholder: "09:00", disabled: !writable });
      const we = h("input", { name: "untilEnd", value: until.end || "", placeholder: "17:00", disabled: !writable });
      const upd = () => set("until", ws.value && we.value ? { ...(s.until || {}), start: ws.value, end: we.value } : "");
      ws.addEventListener("change", upd);
      we.addEventListener("change", upd);
      parts.push(h("div", { class: "grid two" }, field("…then until a window from", ws), field("to", we)), target("next", s.next, "Then"));
    } else if (s.kind === "sendEmail") {
      parts.push(field("Template", pick("template", [["", "Choose…"], ...meta.emailTemplates.map((t) => [t.name, t.name])])), target("next", s.next, "Then"));
    } else if (s.kind === "branch") {
      parts.push(conditionEditor(s, writable, () => drawGraph(), def), target("then", s.then, "If yes, go to"), target("else", s.else, "Otherwise, go to"));
    } else if (s.kind === "plugin") {
      parts.push(field("Plugin", pick("plugin", [["", "Choose…"], ...meta.plugins.map((p) => [p.name, p.name])]), "Runs now for the contact; no score (disabled, failing) goes to Otherwise."),
        field("Score at least", input("gte", { type: "number", min: "0", max: "100" })),
        target("then", s.then, "If it reaches it, go to"), target("else", s.else, "Otherwise, go to"));
    } else if (s.kind === "updateContact") {
      const tags = h("input", { name: "addTags", value: (s.addTags || []).join(", "), disabled: !writable, placeholder: "tag, another" });
      tags.addEventListener("change", () => set("addTags", tags.value.split(",").map((t) => t.trim()).filter(Boolean)));
      parts.push(field("Add tags", tags), field("Set lifecycle stage", pick("lifecycleStage", [["", "Keep"], ...STAGES.map((x) => [x, label(x)])])), target("next", s.next, "Then"));
    } else if (s.kind === "createTask") {
      parts.push(field("Task title", input("title")), field("Due in days", input("dueInDays", { type: "number", min: "0" })), target("next", s.next, "Then"));
    } else if (s.kind === "enroll") {
      parts.push(field("Sequence", pick("sequence", [["", "Choose…"], ...meta.sequences.map((q) => [q.name, q.name])])), target("next", s.next, "Then"));
    } else if (s.kind === "exit") {
      parts.push(field("Reason", input("reason", { placeholder: "e.g. finished" })));
    }
    mount(inspector, h("div", { class: "stack" }, parts,
      writable ? h("div", { class: "row" },
        def.start !== s.id ? h("button", { type: "button", onclick: () => { def.start = s.id; drawGraph(); drawSettings(); } }, "Make it the start") : null,
        h("button", { type: "button", class: "danger", id: "remove-step", onclick: () => {
          def.steps = def.steps.filter((x) => x !== s);
          for (const x of def.steps) for (const k of ["next", "then", "else"]) if (x[k] === s.id) delete x[k];
          chosen = def.steps[0]?.id;
          drawGraph();
          drawInspector();
        } }, "Remove step")) : null));
  };

  const drawSettings = () => {
    const text = (key, attrs = {}) => {
      const el = h("input", { name: key, value: def[key] ?? "", disabled: !writable, ...attrs });
      el.addEventListener("change", () => { if (el.value === "") delete def[key]; else def[key] = attrs.type === "number" ? Number(el.value) : el.value; });
      return el;
    };
    const check = (key, text2) => {
      const el = h("input", { type: "checkbox", name: key, checked: !!def[key], disabled: !writable });
      el.addEventListener("change", () => { def[key] = el.checked; });
      return h("label", { class: "check" }, el, ` ${text2}`);
    };
    const capMax = h("input", { name: "capMax", type: "number", min: "1", value: def.frequencyCap?.max ?? "", disabled: !writable, placeholder: "emails" });
    const capDays = h("input", { name: "capDays", type: "number", min: "1", value: def.frequencyCap?.days ?? "", disabled: !writable, placeholder: "days" });
    const cap = () => { if (capMax.value && capDays.value) def.frequencyCap = { max: Number(capMax.value), days: Number(capDays.value) }; else delete def.frequencyCap; };
    capMax.addEventListener("change", cap);
    capDays.addEventListener("change", cap);
    const qs = h("input", { name: "quietStart", value: def.quietHours?.start ?? "", placeholder: "21:00", disabled: !writable });
    const qe = h("input", { name: "quietEnd", value: def.quietHours?.end ?? "", placeholder: "08:00", disabled: !writable });
    const quiet = () => { if (qs.value && qe.value) def.quietHours = { start: qs.value, end: qe.value }; else delete def.quietHours; };
    qs.addEventListener("change", quiet);
    qe.addEventListener("change", quiet);
    const start = select("start", stepIds(), def.start);
    start.disabled = !writable;
    start.addEventListener("change", () => { def.start = start.value; drawGraph(); });
    mount(settingsBox,
      field("Name", text("name", { required: true })),
      h("div", { class: "grid two" }, field("Sender address", text("fromEmail", { type: "email" })), field("Sender name", text("fromName"))),
      field("First step", start),
      h("h3", {}, "Enrolls contacts when"), triggersEditor(def, meta, writable),
      h("h3", {}, "Goal"), goalEditor(def, writable),
      h("h3", {}, "Limits"),
      h("div", { class: "grid two" }, field("At most (emails)", capMax), field("per (days)", capDays)),
      h("div", { class: "grid two" }, field("Quiet hours from", qs), field("to", qe)),
      check("allowReentry", "Contacts may go through it again"), check("exitOnReply", "A reply takes the contact out"));
  };

  const drawErrors = () => mount(errorsBox, general.length || problems.size ? h("div", { class: "form-error", role: "alert" },
    h("strong", {}, "Not saved. "), [...general, ...problems.values()].join(" · ")) : null);

  const save = async () => {
    problems = new Map();
    general = [];
    try {
      if (!seq) {
        const created = (await gql(`mutation C($d: JSON!) { createSequence(definition: $d) { id } }`, { d: def })).createSequence;
        toast("Sequence saved as a draft.");
        navigate(`#/sequences/${created.id}`);
        return;
      }
      const updated = (await gql(`mutation U($id: ID!, $d: JSON!) { updateSequence(id: $id, definition: $d) { version } }`, { id: seq.id, d: def })).updateSequence;
      toast(`Saved as version ${updated.version}.`);
      seq.version = updated.version;
      drawErrors();
      drawGraph();
      reloadSide();
    } catch (e) {
      // "step 'x' is unreachable from the start; step 'y' …": each problem goes on its step.
      for (const part of String(e.message).replace(/^definition: /, "").split("; ")) {
        const m = part.match(/step '([^']+)'/);
        if (m && def.steps.some((s) => s.id === m[1])) problems.set(m[1], part);
        else general.push(part);
      }
      drawErrors();
      drawGraph();
    }
  };

  const lifecycle = (mutation, text2, tone = "") => h("button", { type: "button", class: tone, id: `sequence-${mutation}`, onclick: async () => {
    if (mutation === "archive" && !(await confirm("Archive sequence", "Contacts still in it exit, and it can no longer be activated.", "Archive", "danger solid"))) return;
    try {
      const r = (await gql(`mutation M($id: ID!) { ${mutation}Sequence(id: $id) { status } }`, { id: seq.id }))[`${mutation}Sequence`];
      seq.status = r.status;
      drawHead();
      toast(`Sequence ${label(r.status).toLowerCase()}.`);
    } catch (e) {
      toast(e.message, "error");
    }
  } }, text2);
  const drawHead = () => mount(head, pageHead(seq ? seq.name : "New sequence",
    h("span", {}, h("a", { href: "#/sequences" }, "← All sequences"), seq ? [" · ", statusBadge(seq.status), ` · version ${seq.version}`] : null),
    writable ? h("button", { type: "button", class: "primary", id: "save-sequence", onclick: once(save) }, seq ? "Save version" : "Create draft") : null,
    writable && seq && ["DRAFT", "PAUSED"].includes(seq.status) ? lifecycle("activate", "Activate", "") : null,
    writable && seq?.status === "ACTIVE" ? lifecycle("pause", "Pause") : null,
    writable && seq && seq.status !== "ARCHIVED" ? lifecycle("archive", "Archive", "danger") : null,
    seq ? h("button", { type: "button", id: "export-sequence", onclick: () => exportJson(seq) }, "Export JSON") : null,
    writable ? h("button", { type: "button", id: "import-sequence", onclick: importJson }, "Import JSON") : null));

  const side = h("div", { class: "stack" });
  const reloadSide = () => {
    if (!seq) return;
    mount(side,
      panel("Enroll", enrollBox(seq, writable)),
      panel("Versions", versionsBox(seq, writable)),
      panel("Enrollments", enrollmentsBox(seq)));
  };
  drawHead();
  mount(page, head, errorsBox,
    h("div", { class: "grid editor" },
      panel("Steps", h("div", {}, canvas, writable ? h("div", { class: "row", style: { marginTop: "10px" } }, h("button", { type: "button", id: "add-step", onclick: () => {
        let n = def.steps.length + 1;
        while (def.steps.some((s) => s.id === `step${n}`)) n++;
        def.steps.push({ id: `step${n}`, kind: "wait", duration: "1d" });
        chosen = `step${n}`;
        drawGraph();
        drawInspector();
      } }, "+ Add step"), h("span", { class: "small muted" }, "Connect it by choosing it as another step's “Then”.")) : null)),
      h("div", { class: "stack" }, panel("Step", inspector), panel("Settings", settingsBox))),
    side);
  drawGraph();
  drawInspector();
  drawSettings();
  reloadSide();
  if (seq) {
    const loadStats = async () => {
      const rows = (await gql(`query S($id: ID!) { sequence(id: $id) { stats { step kind entered completed current emailsSent opens clicks exits { reason count } } } }`, { id: seq.id })).sequence.stats;
      stats = new Map(rows.map((r) => [r.step, r]));
      drawGraph();
    };
    await loadStats().catch(() => {});
    // An archived sequence's numbers no longer move.
    if (seq.status !== "ARCHIVED") every(3000, canvas, async () => { if (seq.status !== "ARCHIVED") await loadStats(); });
  }
}

function summary(s, meta) {
  switch (s.kind) {
    case "wait": return s.duration ? `Wait ${s.duration}${s.until ? ` then until ${s.until.start}–${s.until.end}` : ""}` : s.until ? `Until ${s.until.start}–${s.until.end}` : "Wait";
    case "sendEmail": return s.template ? `Email “${s.template}”` : "Email: choose a template";
    case "branch": return `If ${conditionText(s.if)}`;
    case "plugin": return `If ${s.plugin || "?"} scores ≥ ${s.gte ?? "?"}`;
    case "updateContact": return [s.addTags?.length ? `tag ${s.addTags.join(", ")}` : "", s.lifecycleStage ? `stage → ${s.lifecycleStage}` : ""].filter(Boolean).join("; ") || "Update contact";
    case "createTask": return `Task “${s.title || ""}”`;
    case "enroll": return `Enroll in “${s.sequence || "?"}”`;
    case "exit": return `Exit${s.reason ? `: ${s.reason}` : ""}`;
    default: return s.kind;
  }
}

function conditionText(c) {
  if (!c) return "?";
  const [k, v] = Object.entries(c)[0] || [];
  if (k === "opened" || k === "clicked") return `${k} the email of “${v}”`;
  if (k === "replied") return v ? "replied" : "did not reply";
  if (k === "tag") return `has tag “${v}”`;
  if (k === "lifecycle") return `is a ${v}`;
  if (k === "event") return `did “${v.eventType}” in ${v.withinDays} days`;
  if (k === "score") return `${v.model} ≥ ${v.gte}`;
  return JSON.stringify(c);
}

const CONDITIONS = [["opened", "Opened the email of step"], ["clicked", "Clicked in the email of step"], ["replied", "Replied"], ["tag", "Has tag"], ["lifecycle", "Lifecycle stage is"], ["event", "Did event (within days)"], ["score", "Score at least"], ["json", "Other (JSON)"]];

function conditionEditor(s, writable, changed, def) {
  const box = h("div", { class: "field" });
  const draw = () => {
    const [k, v] = Object.entries(s.if || { tag: "" })[0];
    const known = CONDITIONS.some(([x]) => x === k) ? k : "json";
    const kind = select("condition", CONDITIONS, known);
    kind.disabled = !writable;
    kind.setAttribute("aria-label", "Condition");
    kind.addEventListener("change", () => {
      const fresh = { opened: def.steps.find((x) => x.kind === "sendEmail")?.id || "", clicked: def.steps.find((x) => x.kind === "sendEmail")?.id || "", replied: true, tag: "", lifecycle: "customer", event: { eventType: "", withinDays: 7 }, score: { model: "lead_score", gte: 70 }, json: {} };
      s.if = kind.value === "json" ? { all: [] } : { [kind.value]: fresh[kind.value] };
      draw();
      changed();
    });
    let value;
    const on = (el, fn) => { el.disabled = !writable; el.addEventListener("change", () => { fn(el.value); changed(); }); return el; };
    if (known === "opened" || known === "clicked") value = on(select("conditionStep", def.steps.filter((x) => x.kind === "sendEmail").map((x) => [x.id, x.id]), v), (x) => { s.if = { [known]: x }; });
    else if (known === "replied") value = on(select("conditionReplied", [["true", "yes"], ["false", "no"]], String(v)), (x) => { s.if = { replied: x === "true" }; });
    else if (known === "tag") value = on(h("input", { name: "conditionTag", value: v, placeholder: "tag" }), (x) => { s.if = { tag: x }; });
    else if (known === "lifecycle") value = on(select("conditionStage", STAGES.map((x) => [x, label(x)]), v), (x) => { s.if = { lifecycle: x }; });
    else if (known === "event") {
      const t = on(h("input", { name: "conditionEvent", value: v.eventType, placeholder: "event type" }), (x) => { s.if = { event: { ...s.if.event, eventType: x } }; });
      const d = on(h("input", { name: "conditionDays", type: "number", min: "1", value: v.withinDays }), (x) => { s.if = { event: { ...s.if.event, withinDays: Number(x) } }; });
      value = h("div", { class: "row" }, t, d);
    } else if (known === "score") {
      const m = on(select("conditionModel", [["lead_score", "Lead score"], ["churn", "Churn risk"]], v.model), (x) => { s.if = { score: { ...s.if.score, model: x } }; });
      const g = on(h("input", { name: "conditionGte", type: "number", value: v.gte }), (x) => { s.if = { score: { ...s.if.score, gte: Number(x) } }; });
      value = h("div", { class: "row" }, m, g);
    } else {
      const area = h("textarea", { name: "conditionJson", rows: 4, class: "code" });
      area.value = JSON.stringify(s.if, null, 1);
      area.disabled = !writable;
      area.addEventListener("change", () => {
        try { s.if = JSON.parse(area.value); area.removeAttribute("aria-invalid"); changed(); } catch { area.setAttribute("aria-invalid", "true"); }
      });
      value = area;
    }
    mount(box, h("label", {}, "Branch on"), h("div", { class: "stack" }, kind, value));
  };
  draw();
  return box;
}

const TRIGGERS = [["segment", "Joins a segment"], ["event", "Does an event"], ["lifecycle", "Lifecycle stage becomes"], ["churnLevel", "Churn risk becomes"], ["score", "Score reaches"]];

function triggersEditor(def, meta, writable) {
  const box = h("div", { id: "triggers" });
  const draw = () => {
    mount(box, (def.triggers || []).map((t, i) => {
      const known = TRIGGERS.some(([k]) => k === t.kind);
      const kind = select(`trigger-${i}`, known ? TRIGGERS : [...TRIGGERS, [t.kind, label(t.kind)]], t.kind);
      kind.disabled = !writable;
      kind.setAttribute("aria-label", "Trigger");
      kind.addEventListener("change", () => {
        def.triggers[i] = kind.value === "segment" ? { kind: "segment", segmentId: Number(meta.segments[0]?.id || 0) }
          : kind.value === "event" ? { kind: "event", eventType: "" }
            : kind.value === "score" ? { kind: "score", model: "lead_score", atLeast: 70 }
              : { kind: kind.value, to: kind.value === "churnLevel" ? "high" : "customer" };
        draw();
      });
      let value = h("span", { class: "small muted" }, JSON.stringify(t));
      const on = (el, fn) => { el.disabled = !writable; el.addEventListener("change", () => fn(el.value)); return el; };
      if (t.kind === "segment") value = on(select(`trigger-${i}-segment`, meta.segments.map((s) => [s.id, s.name]), String(t.segmentId)), (x) => { t.segmentId = Number(x); });
      else if (t.kind === "event") value = on(h("input", { name: `trigger-${i}-event`, value: t.eventType, placeholder: "event type" }), (x) => { t.eventType = x; });
      else if (t.kind === "lifecycle") value = on(select(`trigger-${i}-to`, STAGES.map((x) => [x, label(x)]), t.to), (x) => { t.to = x; });
      else if (t.kind === "churnLevel") value = on(select(`trigger-${i}-to`, [["high", "High"], ["medium", "Medium"], ["low", "Low"]], t.to), (x) => { t.to = x; });
      else if (t.kind === "score") {
        const source = on(select(`trigger-${i}-model`, [["lead_score", "Lead score"], ["churn", "Churn risk"], ...(t.plugin ? [[`plugin:${t.plugin}`, `Plugin ${t.plugin}`]] : [])], t.plugin ? `plugin:${t.plugin}` : t.model || "lead_score"), (x) => {
          if (x.startsWith("plugin:")) { t.plugin = x.slice(7); delete t.model; } else { t.model = x; delete t.plugin; }
        });
        const least = on(h("input", { name: `trigger-${i}-atLeast`, type: "number", min: "0", max: "100", value: t.atLeast ?? "", placeholder: "at least", "aria-label": "At least" }), (x) => { t.atLeast = x === "" ? null : Number(x); });
        value = h("div", { class: "row" }, source, least);
      }
      value.setAttribute?.("aria-label", "Trigger value");
      return h("div", { class: "rule" }, kind, value, writable ? h("button", { type: "button", class: "ghost", "aria-label": "Remove trigger", onclick: () => { def.triggers.splice(i, 1); draw(); } }, "✕") : null);
    }), def.triggers?.length ? null : h("div", { class: "small muted" }, "Only when enrolled by hand or by the API."),
    writable ? h("button", { type: "button", id: "add-trigger", onclick: () => { (def.triggers ||= []).push({ kind: "event", eventType: "" }); draw(); } }, "+ Add trigger") : null);
  };
  draw();
  return box;
}

function goalEditor(def, writable) {
  const tag = h("input", { name: "goalTag", value: def.goal?.tag || "", placeholder: "none", disabled: !writable });
  const stage = select("goalStage", [["", "none"], ...STAGES.map((x) => [x, label(x)])], def.goal?.lifecycle || "");
  stage.disabled = !writable;
  const upd = () => {
    if (stage.value) def.goal = { lifecycle: stage.value };
    else if (tag.value) def.goal = { tag: tag.value };
    else delete def.goal;
  };
  tag.addEventListener("change", upd);
  stage.addEventListener("change", upd);
  return h("div", { class: "grid two" }, field("Leave when lifecycle stage is", stage), field("…or when tagged", tag));
}

async function exportJson(seq) {
  try {
    const json = (await gql(`query E($id: ID!) { exportSequence(id: $id) }`, { id: seq.id })).exportSequence;
    const url = URL.createObjectURL(new Blob([json], { type: "application/json" }));
    const a = h("a", { href: url, download: `${seq.name.replace(/[^A-Za-z0-9_-]+/g, "-")}.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (e) {
    toast(e.message, "error");
  }
}

async function importJson() {
  const area = h("textarea", { name: "json", rows: 14, class: "code", placeholder: "Paste an exported sequence" });
  const fileInput = h("input", { type: "file", accept: "application/json,.json", "aria-label": "JSON file" });
  fileInput.addEventListener("change", async () => { area.value = await fileInput.files[0].text(); });
  const note = h("div", {});
  let made = null;
  await dialog("Import a sequence", h("div", {}, h("p", { class: "small muted" }, "A sequence of a new name is created; one of a known name gains a new version."), fileInput, area, note), [
    { label: "Cancel", value: "cancel" },
    { label: "Import", value: "ok", class: "primary", run: async () => {
      try {
        made = (await gql(`mutation I($json: String!) { importSequence(json: $json) { id } }`, { json: area.value })).importSequence;
        return true;
      } catch (e) {
        mount(note, h("div", { class: "form-error", role: "alert" }, e.message));
        return false;
      }
    } },
  ]);
  if (made) navigate(`#/sequences/${made.id}`);
}

function enrollBox(seq, writable) {
  if (!writable) return empty("Enrolling needs write access.");
  const ids = h("input", { name: "enrollIds", placeholder: "Contact ids, e.g. 12, 15" });
  const seg = h("div", {});
  return h("div", { class: "stack" }, h("div", { class: "row" }, ids, h("button", { type: "button", id: "enroll", onclick: once(async () => {
    const list = ids.value.split(/[\s,]+/).filter(Boolean);
    if (!list.length) return toast("Type contact ids first.", "error");
    try {
      const r = (await gql(`mutation E($id: ID!, $c: [ID!]!) { enrollInSequence(sequenceId: $id, contactIds: $c) { enrollments { id } skipped { contactId reason } } }`, { id: seq.id, c: list })).enrollInSequence;
      toast(`${r.enrollments.length} enrolled${r.skipped.length ? `, ${r.skipped.length} skipped (${r.skipped[0].reason})` : ""}.`);
      ids.value = "";
    } catch (e) {
      toast(e.message, "error");
    }
  }) }, "Enroll")), seg);
}

function versionsBox(seq, writable) {
  const box = h("div", {});
  const versions = seq.versions.map((v) => v.version).sort((a, b) => b - a);
  const from = select("diffFrom", versions.map((v) => [v, `version ${v}`]), versions[1] ?? versions[0]);
  const to = select("diffTo", versions.map((v) => [v, `version ${v}`]), versions[0]);
  from.setAttribute("aria-label", "Compare version");
  to.setAttribute("aria-label", "with version");
  const out = h("div", { id: "version-diff" });
  const tickets = latest();
  const show = async () => {
    const current = tickets();
    try {
      const all = (await gql(`query V($id: ID!) { sequence(id: $id) { versions { version definition } } }`, { id: seq.id })).sequence.versions;
      if (!current()) return;
      const a = all.find((v) => String(v.version) === from.value)?.definition;
      const b = all.find((v) => String(v.version) === to.value)?.definition;
      const changes = diff(a, b);
      mount(out, changes.length ? h("ul", { class: "diff" }, changes.map((c) => h("li", { class: c.kind },
        h("strong", {}, c.kind === "setting" ? `Setting ${c.what}` : `Step ${c.what}`), ` ${c.kind === "setting" ? "changed" : c.kind}`,
        c.kind === "changed" || c.kind === "setting" ? h("div", { class: "small" }, h("code", { class: "del" }, JSON.stringify(c.from) ?? "–"), " → ", h("code", { class: "add" }, JSON.stringify(c.to) ?? "–")) : null))) : empty("The two versions are the same."));
    } catch (e) {
      mount(out, empty(e.message));
    }
  };
  from.addEventListener("change", show);
  to.addEventListener("change", show);
  mount(box, h("ul", { class: "plain small" }, seq.versions.slice().sort((a, b) => b.version - a.version).slice(0, 8).map((v) => h("li", {}, `Version ${v.version}`, h("span", { class: "muted" }, ` · ${fmtDateTime(v.createdAt)}`), v.version === seq.version ? [" ", statusBadge("current")] : null))),
    versions.length > 1 ? h("div", {}, h("div", { class: "row" }, "Compare", from, "with", to), out) : null,
    writable && versions.length > 1 ? migrateBox(seq) : null);
  if (versions.length > 1) show();
  return box;
}

function migrateBox(seq) {
  const box = h("div", { style: { marginTop: "12px" } });
  const from = select("migrateFrom", [["", "every older version"], ...seq.versions.filter((v) => v.version !== seq.version).map((v) => [v.version, `version ${v.version}`])], "");
  from.setAttribute("aria-label", "Move enrollments from");
  const map = h("div", { id: "step-map" });
  const drawMap = async () => {
    const all = (await gql(`query V($id: ID!) { sequence(id: $id) { versions { version definition } } }`, { id: seq.id })).sequence.versions;
    const current = all.find((v) => v.version === seq.version).definition;
    const now = new Set(current.steps.map((s) => s.id));
    const olds = all.filter((v) => v.version !== seq.version && (!from.value || String(v.version) === from.value));
    const gone = [...new Set(olds.flatMap((v) => v.definition.steps.map((s) => s.id)).filter((id) => !now.has(id)))];
    mount(map, gone.length ? [h("div", { class: "small muted" }, "Steps the current version no longer has: where should contacts on them go?"),
      gone.map((id) => h("div", { class: "row" }, h("code", {}, id), "→", select(`map-${id}`, current.steps.map((s) => [s.id, s.id]), current.start)))] : h("div", { class: "small muted" }, "Every step still exists: contacts stay on their step."));
  };
  from.addEventListener("change", drawMap);
  drawMap().catch(() => {});
  return h("div", { class: "stack", style: { marginTop: "14px" } }, h("h3", {}, "Move enrollments to the current version"), h("div", { class: "row" }, "From", from), map,
    h("button", { type: "button", id: "migrate", onclick: once(async () => {
      const stepMap = {};
      map.querySelectorAll("select").forEach((s) => { stepMap[s.name.slice(4)] = s.value; });
      try {
        const n = (await gql(`mutation M($id: ID!, $from: Int, $map: JSON) { migrateSequenceEnrollments(sequenceId: $id, fromVersion: $from, stepMap: $map) }`,
          { id: seq.id, from: from.value ? Number(from.value) : null, map: stepMap })).migrateSequenceEnrollments;
        toast(`${n} enrollments moved to version ${seq.version}.`);
      } catch (e) {
        toast(e.message, "error");
      }
    }) }, "Move enrollments"), box);
}

function enrollmentsBox(seq) {
  const box = h("div", {}, loading());
  const statusFilter = select("enrollmentStatus", [["", "Every status"], ["ACTIVE", "Active"], ["COMPLETED", "Completed"], ["EXITED", "Exited"]], "");
  statusFilter.setAttribute("aria-label", "Enrollments in status");
  const draw = async () => {
    let rows;
    try {
      rows = (await gql(`query E($id: ID!, $s: EnrollmentStatus) { sequenceEnrollments(sequenceId: $id, status: $s, first: 50) { id status currentStep version enrolledAt exitReason contact { id name } history { step outcome detail at } } }`, { id: seq.id, s: statusFilter.value || null })).sequenceEnrollments;
    } catch (e) {
      return mount(list, empty(e.message));
    }
    mount(list, rows.length ? h("table", { class: "compact", id: "enrollments-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Contact"), h("th", {}, "Status"), h("th", {}, "Step"), h("th", {}, "Since"))),
      h("tbody", {}, rows.map((r) => {
        const history = h("tr", { hidden: true }, h("td", { colspan: "4" }, h("ol", { class: "history small" }, r.history.map((e) => h("li", {}, h("code", {}, e.step), ` ${e.outcome}`, e.detail ? h("span", { class: "muted" }, ` · ${e.detail}`) : null, h("span", { class: "muted" }, ` · ${fmtDateTime(e.at)}`))))));
        return [h("tr", {},
          h("td", {}, r.contact ? h("a", { href: `#/contacts/${r.contact.id}` }, r.contact.name) : "(erased)"),
          h("td", {}, statusBadge(r.status), r.exitReason ? h("div", { class: "small muted" }, r.exitReason) : null),
          h("td", {}, h("button", { type: "button", class: "ghost", "aria-expanded": "false", onclick: (ev) => { history.hidden = !history.hidden; ev.currentTarget.setAttribute("aria-expanded", String(!history.hidden)); } }, h("code", {}, r.currentStep), ` v${r.version}`)),
          h("td", { class: "small" }, fmtDateTime(r.enrolledAt))), history];
      }))) : empty("Nobody is enrolled."));
  };
  const list = h("div", {});
  statusFilter.addEventListener("change", draw);
  mount(box, h("div", { class: "row", style: { marginBottom: "8px" } }, statusFilter), list);
  draw();
  return box;
}
