// Talks to Rapport: the sign-in routes and the public GraphQL API, nothing else.
// A session is an HttpOnly cookie the page never sees; every request also carries the
// session's CSRF token, which the server hands to this page only.

let csrf = null;
let session = null;

/** An error from the server, with its stable code and the input field it concerns. */
export class ApiError extends Error {
  constructor(message, { code = "INTERNAL", field = null, status = 0, retryAfter = null, errors = [] } = {}) {
    super(message);
    this.code = code;
    this.field = field;
    this.status = status;
    this.retryAfter = retryAfter;
    this.errors = errors;
  }
}

export function currentSession() {
  return session;
}

async function json(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

function fromBody(body, status, response) {
  const e = (body.errors && body.errors[0]) || {};
  const ext = e.extensions || {};
  return new ApiError(e.message || `the server answered ${status}`, {
    code: ext.code || "INTERNAL",
    field: ext.field || null,
    status,
    retryAfter: response && response.headers.get("Retry-After"),
    errors: body.errors || [],
  });
}

async function post(path, payload, withCsrf = false) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (withCsrf && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers,
    body: JSON.stringify(payload || {}),
  });
  const body = await json(response);
  if (!response.ok) throw fromBody(body, response.status, response);
  return body;
}

function remember(body) {
  csrf = body.csrfToken;
  session = { user: body.user, workspaceName: body.workspaceName || session?.workspaceName || "" };
  return session;
}

/** The session of this browser, or null when nobody is signed in. */
export async function loadSession() {
  const response = await fetch("/auth/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) {
    csrf = null;
    session = null;
    return null;
  }
  return remember(await json(response));
}

export async function signIn(email, password) {
  remember(await post("/auth/sign-in", { email, password }));
  return loadSession();
}

export async function signOut(everywhere = false) {
  try {
    await post(everywhere ? "/auth/sign-out-everywhere" : "/auth/sign-out", {}, true);
  } finally {
    csrf = null;
    session = null;
  }
}

export async function setPassword(token, password) {
  remember(await post("/auth/set-password", { token, password }));
  return loadSession();
}

export async function forgotPassword(email) {
  await post("/auth/forgot-password", { email });
}

let onSignedOut = () => {};
/** What to do when the server says the session has ended. */
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

/** Whether a 403 says the CSRF token does not belong to the session cookie. */
function staleToken(body) {
  return /X-CSRF-Token/.test(body?.errors?.[0]?.message || "");
}

/** Runs a GraphQL document; resolves to `data`, or throws the first error. */
export async function gql(query, variables = {}, retried = false) {
  const response = await fetch("/graphql", {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/graphql-response+json, application/json",
      "X-CSRF-Token": csrf || "",
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await json(response);
  // Signing in again in another tab replaces the cookie, and with it the CSRF token this
  // tab holds (the server answers 403): ask for the session once more, then retry.
  if (response.status === 403 && !retried && staleToken(body) && (await loadSession().catch(() => null))) {
    return gql(query, variables, true);
  }
  if (response.status === 401) {
    session = null;
    onSignedOut();
    throw fromBody(body, 401, response);
  }
  if (body.errors && body.errors.length) throw fromBody(body, response.status, response);
  if (!response.ok) throw fromBody(body, response.status, response);
  return body.data;
}

/** What the signed-in person may do, from their role. */
export function can(what) {
  const role = session?.user?.role || "VIEWER";
  const rank = { VIEWER: 0, MEMBER: 1, MANAGER: 2, ADMIN: 3 }[role] ?? 0;
  if (what === "write") return rank >= 1;
  if (what === "manage") return rank >= 2;
  if (what === "admin") return rank >= 3;
  return true;
}

/** Whether the person may change a record owned by `ownerId` (members: their own or nobody's). */
export function canChange(ownerId) {
  if (!can("write")) return false;
  if (session?.user?.role !== "MEMBER") return true;
  return !ownerId || String(ownerId) === String(session.user.id);
}

/**
 * Runs a GraphQL document with one file (the multipart request spec): the file goes to
 * variable `fileVariable`. Resolves to `data`, or throws the first error.
 */
export async function uploadGraphql(query, variables, fileVariable, file, retried = false) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { ...variables, [fileVariable]: null } }));
  form.append("map", JSON.stringify({ 0: [`variables.${fileVariable}`] }));
  form.append("0", file, file.name);
  const response = await fetch("/graphql", {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/graphql-response+json, application/json", "X-CSRF-Token": csrf || "" },
    body: form,
  });
  const body = await json(response);
  if (response.status === 403 && !retried && staleToken(body) && (await loadSession().catch(() => null))) {
    return uploadGraphql(query, variables, fileVariable, file, true);
  }
  if (response.status === 401) {
    session = null;
    onSignedOut();
  }
  if ((body.errors && body.errors.length) || !response.ok) throw fromBody(body, response.status, response);
  return body.data;
}

/**
 * Follows a GraphQL subscription over the socket at /graphql (graphql-transport-ws): the
 * session's cookie goes with the upgrade, its CSRF token in `connection_init`. `onNext`
 * gets each event's data. It stops once `owner` (the page element it serves) has left
 * the document, or when the returned function is called; a dropped socket is opened again
 * after a pause that doubles up to half a minute.
 */
export function subscribe(query, variables, onNext, owner) {
  let socket = null;
  let stopped = false;
  let pause = 1000;
  const stop = () => {
    stopped = true;
    clearInterval(watch);
    if (socket) socket.close();
  };
  // Nothing tells a socket its page went away: look now and then.
  const watch = setInterval(() => {
    if (owner && !owner.isConnected) stop();
  }, 2000);
  const open = () => {
    if (stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/graphql`, "graphql-transport-ws");
    socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: { csrfToken: csrf || "" } }));
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "connection_ack") {
        pause = 1000;
        socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
      } else if (message.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (message.type === "next" && message.payload && message.payload.data) {
        if (owner && !owner.isConnected) return stop();
        onNext(message.payload.data);
      }
    };
    socket.onclose = () => {
      if (stopped) return;
      setTimeout(open, pause);
      pause = Math.min(pause * 2, 30000);
    };
  };
  open();
  return stop;
}
