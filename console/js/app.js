// The console's shell: who is signed in, the navigation, and which page a URL shows.
// URLs are fragments (#/contacts/12), so the server serves one page for all of them
// and a one-time token in a link (#/set-password?token=…) never reaches a server log.

import { loadSession, currentSession, signOut, whenSignedOut, can } from "./api.js";
import { h, mount, label, toast } from "./ui.js";
import { signInPage, setPasswordPage, forgotPage } from "./pages/auth.js";
import { homePage } from "./pages/home.js";
import { contactsPage } from "./pages/contacts.js";
import { contactPage } from "./pages/contact.js";
import { boardPage } from "./pages/board.js";
import { settingsPage } from "./pages/settings.js";
import { campaignsPage, campaignPage } from "./pages/campaigns.js";
import { sequencesPage, sequencePage } from "./pages/sequences.js";
import { segmentsPage, segmentPage } from "./pages/segments.js";
import { templatesPage, templatePage } from "./pages/templates.js";
import { pluginsPage, pluginPage } from "./pages/plugins.js";

const app = document.getElementById("app");

const NAV = [
  ["#/", "Home", "⌂"],
  ["#/contacts", "Contacts", "☰"],
  ["#/board", "Pipeline", "▥"],
  ["#/campaigns", "Campaigns", "✉"],
  ["#/sequences", "Sequences", "⇢"],
  ["#/segments", "Segments", "◎"],
  ["#/templates", "Templates", "▤"],
  ["#/plugins", "Plugins & models", "◈"],
  ["#/settings", "Settings", "⚙"],
];

function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

/** Goes to a console URL. */
export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function shell(active, content) {
  const session = currentSession();
  const user = session.user;
  return h("div", { class: "shell" },
    h("nav", { class: "side", "aria-label": "Main" },
      h("div", { class: "brand" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "R"), "Rapport"),
      h("div", { class: "workspace" }, session.workspaceName || ""),
      h("div", { class: "nav" }, NAV.map(([href, text, icon]) =>
        h("a", { href, "aria-current": active === href ? "page" : null }, h("span", { class: "icon", "aria-hidden": "true" }, icon), text))),
      h("div", { class: "me" },
        h("div", { class: "who" }, user.name),
        h("div", { class: "role" }, `${label(user.role)} · ${user.email}`),
        h("button", { type: "button", id: "sign-out", onclick: async () => {
          await signOut(false).catch(() => {});
          go("#/sign-in");
        } }, "Sign out"),
        h("button", { type: "button", id: "sign-out-everywhere", onclick: async () => {
          await signOut(true).catch(() => {});
          toast("Signed out on every device");
          go("#/sign-in");
        } }, "Sign out everywhere"))),
    h("main", { class: "main", id: "main", tabindex: "-1" }, content));
}

// Section → [its list page, one item's page].
const PAGES = {
  campaigns: [campaignsPage, campaignPage],
  sequences: [sequencesPage, sequencePage],
  segments: [segmentsPage, segmentPage],
  templates: [templatesPage, templatePage],
  plugins: [pluginsPage, pluginPage],
};

let rendering = 0;
async function render() {
  const ticket = ++rendering;
  const { path, params } = route();
  if (path === "/set-password") return mount(app, setPasswordPage(params.get("token") || "", () => go("#/")));
  if (path === "/forgot") return mount(app, forgotPage());
  let session = currentSession();
  if (!session) session = await loadSession();
  if (ticket !== rendering) return;
  if (path === "/sign-in" || !session) {
    if (session) return go("#/");
    return mount(app, signInPage(() => go(sessionStorage.getItem("rapport.next") || "#/")));
  }
  sessionStorage.removeItem("rapport.next");
  const page = h("div", {});
  let active = "#/";
  const contact = path.match(/^\/contacts\/(\d+)$/);
  let m;
  if (path === "/" || path === "") homePage(page);
  else if (path === "/contacts") { active = "#/contacts"; contactsPage(page, params); }
  else if (contact) { active = "#/contacts"; contactPage(page, contact[1]); }
  else if (path === "/board") { active = "#/board"; boardPage(page, params); }
  else if (path === "/settings") { active = "#/settings"; settingsPage(page); }
  else if ((m = path.match(/^\/(campaigns|sequences|segments|templates|plugins)(?:\/([^/]+))?$/))) {
    active = `#/${m[1]}`;
    const [list, one] = PAGES[m[1]];
    if (m[2]) one(page, decodeURIComponent(m[2]));
    else list(page);
  }
  else mount(page, h("div", { class: "panel" }, h("h1", {}, "Not found"), h("p", {}, "There is no page here. "), h("a", { href: "#/" }, "Go home")));
  mount(app, shell(active, page));
  announce(page);
}

// Pages draw after their data arrives: once the page's heading is there, the tab's title
// names it and focus moves to it, so a screen reader hears where a link led.
let watching = null;
function announce(page) {
  watching?.disconnect();
  const done = () => {
    const title = page.querySelector(".page-head h1, h1");
    if (!title) return false;
    document.title = `${title.textContent} · Rapport`;
    if (!title.hasAttribute("tabindex")) title.setAttribute("tabindex", "-1");
    if (!page.contains(document.activeElement) || document.activeElement === document.body) title.focus({ preventScroll: true });
    return true;
  };
  if (done()) return;
  watching = new MutationObserver(() => { if (done()) watching.disconnect(); });
  watching.observe(page, { childList: true, subtree: true });
}

whenSignedOut(() => {
  if (route().path !== "/sign-in") {
    sessionStorage.setItem("rapport.next", location.hash);
    go("#/sign-in");
  }
});
window.addEventListener("hashchange", render);
// Exposed for pages that need to know the role.
export { can };
render();
