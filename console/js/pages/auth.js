// Signing in, setting a password from a one-time link, asking for a reset.

import { signIn, setPassword, forgotPassword } from "../api.js";
import { h, field, showError, clearErrors } from "../ui.js";

function frame(title, lead, ...content) {
  return h("div", { class: "auth" },
    h("main", { class: "panel" },
      h("div", { class: "brand" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "R"), "Rapport"),
      h("h1", {}, title),
      h("p", { class: "lead" }, lead),
      content));
}

export function signInPage(done) {
  const email = h("input", { name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { id: "sign-in-form", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    try {
      await signIn(email.value.trim(), password.value);
      done();
    } catch (err) {
      password.value = "";
      showError(form, err);
    } finally {
      submit.disabled = false;
    }
  } }, field("Email", email), field("Password", password), submit,
  h("p", { class: "small muted", style: { marginTop: "14px" } }, h("a", { href: "#/forgot" }, "Forgot your password?")));
  setTimeout(() => email.focus(), 0);
  return frame("Sign in", "Welcome back. Sign in to your workspace.", form);
}

export function setPasswordPage(token, done) {
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", minlength: "10", required: true });
  const again = h("input", { name: "again", type: "password", autocomplete: "new-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Set password and sign in");
  const form = h("form", { id: "set-password-form", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    if (password.value !== again.value) {
      showError(form, { field: "again", message: "The two passwords differ." });
      return;
    }
    submit.disabled = true;
    try {
      await setPassword(token, password.value);
      history.replaceState(null, "", "#/");
      done();
    } catch (err) {
      showError(form, err.field === "token" ? { message: `${err.message}. Ask your admin for a new invitation, or request a reset.` } : err);
    } finally {
      submit.disabled = false;
    }
  } }, field("New password", password, "At least 10 characters."), field("Repeat it", again), submit);
  setTimeout(() => password.focus(), 0);
  return frame("Choose your password", "This link works once. After this you sign in with your email and this password.", form);
}

export function forgotPage() {
  const email = h("input", { name: "email", type: "email", autocomplete: "username", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Email me a link");
  const box = h("div", {});
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    try {
      await forgotPassword(email.value.trim());
      box.replaceChildren(h("p", { role: "status" }, "If an account uses that address, a link to set a new password is on its way. It works for 2 hours."), h("a", { href: "#/sign-in" }, "Back to sign in"));
    } catch (err) {
      showError(form, err);
    } finally {
      submit.disabled = false;
    }
  } }, field("Email", email), submit, h("p", { class: "small", style: { marginTop: "14px" } }, h("a", { href: "#/sign-in" }, "Back to sign in")));
  box.append(form);
  return frame("Reset your password", "We will email you a one-time link.", box);
}
