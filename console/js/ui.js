// Small DOM helpers: elements, formatting, toasts, dialogs, and errors shown beside the
// field they concern.

/** Creates an element: h("a", {href: "#/"}, "Home"). Text children are escaped by the DOM. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = !!value;
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const money = new Map();
/** An amount in its currency, without cents above 1,000. */
export function fmtMoney(amount, currency = "USD") {
  const key = `${currency}:${Math.abs(amount) >= 1000}`;
  if (!money.has(key)) {
    try {
      money.set(key, new Intl.NumberFormat("en-US", { style: "currency", currency, maximumFractionDigits: Math.abs(amount) >= 1000 ? 0 : 2 }));
    } catch {
      money.set(key, { format: (n) => `${n.toFixed(2)} ${currency}` });
    }
  }
  return money.get(key).format(amount);
}

export function fmtNumber(n, digits = 0) {
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtPercent(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return `${(x * 100).toFixed(digits)}%`;
}

export function fmtDate(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric" });
}

export function fmtDateTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return `${d.toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric" })} ${d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })}`;
}

/** "3 days", "5 h" since `iso`. */
export function age(iso) {
  if (!iso) return "";
  const hours = (Date.now() - new Date(iso).getTime()) / 3.6e6;
  if (hours < 1) return "now";
  if (hours < 48) return `${Math.round(hours)} h`;
  return `${Math.round(hours / 24)} days`;
}

/** UPPER_SNAKE to "Upper snake". */
export function label(value) {
  if (!value) return "";
  const s = String(value).toLowerCase().replaceAll("_", " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function badge(text, tone = "") {
  return h("span", { class: `badge ${tone}` }, text);
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 7000 : 3500);
}

/** Shows an error: beside its field when the form has one by that name, else atop the form. */
export function showError(form, raw) {
  clearErrors(form);
  // The server's messages start lower-case (they also appear inside longer sentences).
  const message = String(raw.message || "Something went wrong.");
  const error = { field: raw.field, message: message.charAt(0).toUpperCase() + message.slice(1) };
  const field = error.field ? String(error.field).split(".").pop() : null;
  const input = field && form ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    const id = `${input.id || field}-error`;
    const note = h("div", { class: "field-error", id, role: "alert" }, error.message);
    input.setAttribute("aria-describedby", id);
    input.closest(".field")?.append(note) || input.after(note);
    input.focus();
    return;
  }
  if (form) {
    form.prepend(h("div", { class: "form-error", role: "alert" }, error.message));
  } else {
    toast(error.message, "error");
  }
}

export function clearErrors(form) {
  if (!form) return;
  form.querySelectorAll(".field-error, .form-error").forEach((e) => e.remove());
  form.querySelectorAll("[aria-invalid]").forEach((e) => {
    e.removeAttribute("aria-invalid");
    e.removeAttribute("aria-describedby");
  });
}

let fieldIds = 0;
/** A labelled input (or select, or textarea) in a .field wrapper. */
export function field(labelText, control, hint) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, labelText), control, hint ? h("div", { class: "small muted" }, hint) : null);
}

export function select(name, options, value) {
  return h("select", { name }, options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value ?? "") }, text)));
}

/** A modal dialog; resolves with the action chosen (or null when dismissed). */
export function dialog(title, body, actions) {
  return new Promise((resolve) => {
    const d = h("dialog", { "aria-labelledby": "dialog-title" });
    // While an action runs, every button waits: a second click must not send it twice.
    let busy = false;
    const buttons = actions.map((a) => h("button", { type: "button", class: a.class || "", onclick: async () => {
      if (busy) return;
      if (a.run) {
        busy = true;
        buttons.forEach((b) => { b.disabled = true; });
        let ok;
        try {
          ok = await a.run(d);
        } finally {
          busy = false;
          buttons.forEach((b) => { b.disabled = false; });
        }
        if (ok === false) return;
      }
      d.close(a.value);
    } }, a.label));
    d.addEventListener("cancel", (e) => { if (busy) e.preventDefault(); });
    append(d, [h("div", { class: "dialog-body" }, h("h2", { id: "dialog-title" }, title), body), h("div", { class: "dialog-actions" }, buttons)]);
    d.addEventListener("close", () => {
      resolve(d.returnValue || null);
      d.remove();
    });
    document.body.append(d);
    d.showModal();
  });
}

export async function confirm(title, message, confirmLabel = "Confirm", tone = "primary") {
  const choice = await dialog(title, h("p", {}, message), [
    { label: "Cancel", value: "cancel" },
    { label: confirmLabel, value: "ok", class: tone },
  ]);
  return choice === "ok";
}

export function empty(message) {
  return h("div", { class: "empty" }, message);
}

export function loading() {
  return h("div", { class: "empty", "aria-busy": "true" }, "Loading…");
}

/** Runs `work`, showing its error (if any) as a toast; returns its result or undefined. */
export async function attempt(work, form = null) {
  try {
    return await work();
  } catch (e) {
    showError(form, e);
    return undefined;
  }
}

/** A page's heading: its title, a line under it, and actions on the right. */
export function pageHead(title, sub, ...actions) {
  return h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, title), sub ? h("div", { class: "sub" }, sub) : null),
    h("div", { class: "toolbar" }, actions));
}

let sectionIds = 0;
/** A titled panel; `actions` sit right of the title. */
export function panel(title, body, ...actions) {
  const id = `p${++sectionIds}`;
  return h("section", { class: "panel", "aria-labelledby": id },
    h("div", { class: "panel-head" }, h("h2", { id }, title), actions.length ? h("div", { class: "row" }, actions) : null),
    body);
}

/** A status as a coloured badge: good, running, stopped or neutral. */
export function statusBadge(status) {
  const s = String(status || "").toUpperCase();
  const tone = ["SENT", "ACTIVE", "COMPLETED", "DELIVERED"].includes(s) ? "good"
    : ["SENDING", "SCHEDULED", "RUNNING"].includes(s) ? "accent"
      : ["PAUSED", "HELD", "PENDING", "QUEUED"].includes(s) ? "warn"
        : ["CANCELLED", "FAILED", "ARCHIVED", "BOUNCED", "EXITED"].includes(s) ? "bad" : "";
  return badge(label(s), tone);
}

/** Runs `work` once per `ms` while `el` stays in the page; returns a stop function. */
export function every(ms, el, work) {
  let timer = null;
  const tick = async () => {
    if (!el.isConnected) return;
    try {
      await work();
    } finally {
      if (el.isConnected) timer = setTimeout(tick, ms);
    }
  };
  timer = setTimeout(tick, ms);
  return () => clearTimeout(timer);
}

/** Goes to a console URL, drawing the page again when it is the current one. */
export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

/**
 * A source of tickets for answers that may arrive out of order: `const current = next();`
 * before asking, `if (!current()) return;` after; only the latest ask is current.
 */
export function latest() {
  let n = 0;
  return () => {
    const mine = ++n;
    return () => mine === n;
  };
}

/**
 * An onclick handler that runs `work` once at a time: its button is disabled (and says
 * so to assistive technology) until the work ends, so a second click sends nothing twice.
 */
export function once(work) {
  return async (event) => {
    const button = event?.currentTarget;
    if (button?.dataset.busy) return;
    if (button) {
      button.dataset.busy = "1";
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    }
    try {
      await work(event);
    } finally {
      if (button) {
        delete button.dataset.busy;
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    }
  };
}
