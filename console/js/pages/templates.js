// Email templates: the library with a preview, and the editor — Jinja in three parts,
// variables offered from what the renderer knows, a live preview for a chosen contact
// (HTML and text side by side), and errors marked on the line they concern.

import { gql, can } from "../api.js";
import { h, mount, field, label, fmtDate, loading, empty, toast, pageHead, panel, confirm, navigate, latest, once } from "../ui.js";

let variables = null;
/** The variables the renderer knows, from the server (it refuses any other). */
export async function templateVariables() {
  if (!variables) variables = (await gql(`{ emailTemplateVariables }`)).emailTemplateVariables.filter((v) => !v.endsWith("*"));
  return variables;
}

export async function templatesPage(page) {
  const list = h("div", {}, loading());
  mount(page,
    pageHead("Templates", "Email written once and personalised for each contact.",
      can("write") ? h("a", { class: "button primary", href: "#/templates/new", id: "new-template" }, "New template") : null),
    panel("Library", list));
  let templates;
  try {
    templates = (await gql(`{ emailTemplates { id name subject html text updatedAt } }`)).emailTemplates;
  } catch (e) {
    return mount(list, empty(e.message));
  }
  if (!templates.length) return mount(list, empty("No template yet."));
  // Choosing a tile previews it for the workspace's first contact; its link opens the editor.
  const shown = h("div", { id: "library-preview" }, empty("Choose a template to preview it."));
  const who = await firstContact().catch(() => null);
  const tickets = latest();
  const show = async (t, button) => {
    const current = tickets();
    list.querySelectorAll("[aria-pressed]").forEach((x) => x.setAttribute("aria-pressed", "false"));
    button.setAttribute("aria-pressed", "true");
    if (!who) return mount(shown, empty("Add a contact to preview templates for."));
    mount(shown, loading());
    try {
      // The draft preview: placeholder links, so looking at a template mints no token.
      const out = (await gql(`query P($i: EmailTemplateInput!, $c: ID!) { previewEmailTemplate(input: $i, contactId: $c) { subject html text } }`,
        { i: { subject: t.subject, html: t.html, text: t.text }, c: who.id })).previewEmailTemplate;
      if (!current()) return;
      mount(shown, h("div", { class: "small muted", style: { marginBottom: "8px" } }, `${t.name}, for ${who.name}`), renderedView(out));
    } catch (e) {
      if (current()) mount(shown, empty(e.message));
    }
  };
  mount(list, h("div", { class: "grid side-main library" },
    h("div", { class: "cards" }, templates.map((t) => {
      const preview = h("button", { type: "button", class: "ghost", "aria-pressed": "false", "aria-label": `Preview ${t.name}` }, "Preview");
      preview.addEventListener("click", () => show(t, preview));
      return h("div", { class: "tile", "data-template": t.id },
        h("div", { class: "tile-title" }, t.name),
        h("div", { class: "small muted" }, t.subject),
        h("div", { class: "row small", style: { marginTop: "6px" } }, h("span", { class: "muted" }, `Edited ${fmtDate(t.updatedAt)}`), h("span", { class: "spacer" }), preview, h("a", { class: "button", href: `#/templates/${t.id}` }, "Edit")));
    })),
    shown));
  const first = list.querySelector(".tile button");
  if (first) show(templates[0], first);
}

/**
 * A code editor: a textarea with line numbers beside it; `mark(line, message)` marks a
 * line and says what is wrong with it under the editor.
 */
export function codeEditor(name, value, rows, labelText) {
  const area = h("textarea", { name, rows, class: "code", spellcheck: "false", wrap: "off" });
  area.value = value || "";
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const note = h("div", { class: "field-error", role: "alert", hidden: true });
  const redraw = (bad) => {
    const n = Math.max(area.value.split("\n").length, rows);
    mount(gutter, Array.from({ length: n }, (_, i) => h("div", { class: i + 1 === bad ? "bad" : "" }, String(i + 1))));
  };
  area.addEventListener("input", () => redraw(null));
  area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
  redraw(null);
  const box = h("div", { class: "field" }, h("label", { for: `code-${name}` }, labelText), h("div", { class: "code-editor" }, gutter, area), note);
  area.id = `code-${name}`;
  return {
    box, area,
    mark(line, message) {
      redraw(line);
      note.hidden = false;
      note.textContent = line ? `Line ${line}: ${message}` : message;
      area.setAttribute("aria-invalid", "true");
      box.dataset.errorLine = line || "";
      if (line) {
        const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 18;
        area.scrollTop = Math.max(0, (line - 3) * lineHeight);
      }
    },
    clear() {
      redraw(null);
      note.hidden = true;
      area.removeAttribute("aria-invalid");
      delete box.dataset.errorLine;
    },
  };
}

/** A menu of the variables, grouped, that inserts the chosen one where `target()` is. */
export function variableMenu(vars, target, disabled = false) {
  const groups = new Map();
  for (const v of vars) {
    const group = v.includes(".") ? v.split(".")[0] : "links and lists";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(v);
  }
  const menu = h("select", { class: "insert", "aria-label": "Insert a variable", disabled },
    h("option", { value: "" }, "Insert a variable…"),
    [...groups].map(([group, list]) => h("optgroup", { label: label(group) }, list.map((v) => h("option", { value: v }, v)))));
  menu.addEventListener("change", () => {
    const v = menu.value;
    if (!v) return;
    insertAtCaret(target(), v === "recommendations" ? "{% for p in recommendations %}{{ p.name }} {% endfor %}" : `{{ ${v} }}`);
    menu.value = "";
  });
  return menu;
}

/** Inserts `text` at the caret of `area`. */
export function insertAtCaret(area, text) {
  const start = area.selectionStart ?? area.value.length;
  area.setRangeText(text, start, area.selectionEnd ?? start, "end");
  area.focus();
  area.dispatchEvent(new Event("input"));
}

/** A contact picker: type to search, choose one; calls `chosen(id, name)`. */
export function contactPicker(chosen, labelText = "Preview for") {
  const input = h("input", { type: "search", name: "previewContact", placeholder: "Search a contact by name or email", autocomplete: "off" });
  const options = h("div", { class: "picker-options", "aria-label": "Matching contacts" });
  let timer = null;
  const tickets = latest();
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const current = tickets();
      const q = input.value.trim();
      const filter = q ? { or: [{ firstName: { contains: q } }, { lastName: { contains: q } }, { email: { contains: q.toLowerCase() } }] } : null;
      try {
        const nodes = (await gql(`query P($f: ContactFilter) { contacts(first: 6, filter: $f) { nodes { id name email } } }`, { f: filter })).contacts.nodes;
        if (!current()) return;
        mount(options, nodes.map((c) => h("button", { type: "button", class: "ghost", onclick: () => {
          input.value = c.name || c.email;
          mount(options);
          chosen(c.id, c.name);
        } }, c.name || c.email, h("span", { class: "muted small" }, ` ${c.email || ""}`))));
      } catch {
        mount(options);
      }
    }, 250);
  });
  return h("div", { class: "picker" }, field(labelText, input), options);
}

/** The first contact of the workspace, to preview for until someone is chosen. */
export async function firstContact() {
  const nodes = (await gql(`{ contacts(first: 1, orderBy: [{field: CREATED_AT, direction: ASC}]) { nodes { id name } } }`)).contacts.nodes;
  return nodes[0] || null;
}

/** The rendered email: subject, then HTML (sandboxed, no scripts) beside the text part. */
export function renderedView(out) {
  const frame = h("iframe", { class: "email-frame", sandbox: "", title: "HTML part", referrerpolicy: "no-referrer" });
  frame.srcdoc = out.html || "<p style='color:#888;font-family:sans-serif'>No HTML part.</p>";
  return h("div", { class: "rendered" },
    h("div", { class: "rendered-subject" }, h("span", { class: "muted small" }, "Subject "), h("strong", { id: "preview-subject" }, out.subject)),
    h("div", { class: "grid two" },
      h("div", {}, h("h3", {}, "HTML"), frame),
      h("div", {}, h("h3", {}, "Text"), h("pre", { class: "email-text", id: "preview-text" }, out.text || "No text part."))));
}

export async function templatePage(page, id) {
  let t = { name: "", subject: "Hello {{ contact.first_name | default('there') }}", html: "<p>Hi {{ contact.first_name | default('there') }},</p>\n\n<p></p>\n\n<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>\n", text: "Hi {{ contact.first_name | default('there') }},\n\n\n\nUnsubscribe: {{ unsubscribe_url }}\n" };
  if (id !== "new") {
    try {
      t = (await gql(`query T($id: ID!) { emailTemplate(id: $id) { id name subject html text } }`, { id })).emailTemplate;
    } catch (e) {
      return mount(page, panel("Template", empty(e.message)));
    }
  }
  const writable = can("write");
  const name = h("input", { name: "name", value: t.name, required: true, placeholder: "e.g. Spring offer", disabled: !writable });
  const subject = codeEditor("subject", t.subject, 1, "Subject");
  const html = codeEditor("html", t.html, 16, "HTML");
  const text = codeEditor("text", t.text, 10, "Text");
  const editors = { subject, html, text };
  let focused = html.area;
  for (const e of Object.values(editors)) {
    e.area.disabled = !writable;
    e.area.addEventListener("focus", () => { focused = e.area; });
  }
  const formError = h("div", {});
  const preview = h("div", { id: "template-preview" }, loading());
  let contactId = null;
  const palette = variableMenu(await templateVariables().catch(() => []), () => focused, !writable);

  let timer = null;
  let ticket = 0;
  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++ticket;
      if (!contactId) return mount(preview, empty("Add a contact to preview the email for."));
      try {
        const out = (await gql(`query R($input: EmailTemplateInput!, $c: ID!) { previewEmailTemplate(input: $input, contactId: $c) { subject html text } }`,
          { input: { subject: subject.area.value, html: html.area.value, text: text.area.value }, c: contactId })).previewEmailTemplate;
        if (mine !== ticket) return;
        for (const e of Object.values(editors)) e.clear();
        mount(formError);
        mount(preview, renderedView(out));
      } catch (e) {
        if (mine !== ticket) return;
        showTemplateError(e);
      }
    }, 400);
  };
  const showTemplateError = (e) => {
    for (const ed of Object.values(editors)) ed.clear();
    const where = editors[e.field];
    const line = e.errors?.[0]?.extensions?.line ?? null;
    const message = String(e.message).replace(/^(subject|html|text): /, "");
    if (where) where.mark(line, message);
    else mount(formError, h("div", { class: "form-error", role: "alert" }, message));
    mount(preview, h("div", { class: "empty" }, "The preview comes back when the template renders."));
  };
  for (const e of Object.values(editors)) e.area.addEventListener("input", refresh);

  const save = async () => {
    const input = { name: name.value, subject: subject.area.value, html: html.area.value, text: text.area.value };
    try {
      if (id === "new") {
        const created = (await gql(`mutation C($input: EmailTemplateInput!) { createEmailTemplate(input: $input) { id name } }`, { input })).createEmailTemplate;
        toast(`Template “${created.name}” saved.`);
        navigate(`#/templates/${created.id}`);
      } else {
        await gql(`mutation U($id: ID!, $input: EmailTemplateInput!) { updateEmailTemplate(id: $id, input: $input) { id } }`, { id, input });
        toast("Template saved.");
      }
    } catch (e) {
      if (e.field === "name") mount(formError, h("div", { class: "form-error", role: "alert" }, e.message));
      else showTemplateError(e);
    }
  };

  mount(page,
    pageHead(id === "new" ? "New template" : t.name, h("a", { href: "#/templates" }, "← All templates"),
      writable ? h("button", { type: "button", class: "primary", id: "save-template", onclick: once(save) }, id === "new" ? "Create template" : "Save template") : null,
      writable && id !== "new" ? h("button", { type: "button", class: "danger", onclick: async () => {
        if (!(await confirm("Delete template", `“${t.name}” will be deleted. Campaigns keep the copy they made.`, "Delete", "danger solid"))) return;
        try {
          await gql(`mutation D($id: ID!) { deleteEmailTemplate(id: $id) }`, { id });
          navigate("#/templates");
        } catch (e) {
          toast(e.message, "error");
        }
      } }, "Delete") : null),
    h("div", { class: "grid two" },
      panel("Template", h("form", { id: "template-form", onsubmit: (e) => e.preventDefault() }, formError, field("Name", name),
        h("div", { class: "row", style: { marginBottom: "10px" } }, palette, h("span", { class: "small muted" }, "at the cursor, in the part you last clicked")), subject.box, html.box, text.box)),
      panel("Preview", h("div", {}, contactPicker((cid) => { contactId = cid; refresh(); }), preview))));
  const first = await firstContact().catch(() => null);
  if (first && !contactId) contactId = first.id;
  refresh();
}
