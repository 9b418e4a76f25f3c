// The JSON API as the pages use it: the tokens the login page stored (sessionStorage: they end with the
// tab), a refresh when the access token has expired, and back to the login page, with a reason, when the
// session is over. Every page script starts with session().
const ACCESS = "lmp.access", REFRESH = "lmp.refresh";
const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export function store(tokens) {
  sessionStorage.setItem(ACCESS, tokens.access_token);
  if (tokens.refresh_token) sessionStorage.setItem(REFRESH, tokens.refresh_token);
}

function toLogin(reason) {
  sessionStorage.removeItem(ACCESS);
  sessionStorage.removeItem(REFRESH);
  const next = encodeURIComponent(location.pathname + location.search);
  location.assign(`/login?reason=${reason}&next=${next}`);
  return new Promise(() => {});  // the page is going away: nothing after this runs
}

async function send(path, options, token) {
  const headers = {...(options.headers || {})};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = {...options, body: JSON.stringify(options.json)};
  }
  return fetch(API + path, {method: options.method || "GET", headers, body: options.body, keepalive: options.keepalive});
}

async function refresh() {
  const token = sessionStorage.getItem(REFRESH);
  if (!token) return false;
  const response = await send("/auth/refresh", {method: "POST"}, token);
  if (!response.ok) return false;
  store(await response.json());
  return true;
}

// A request with the access token; the response's JSON (or text), or an ApiError.
export async function api(path, options = {}) {
  let response = await send(path, options, sessionStorage.getItem(ACCESS));
  if (response.status === 401 && await refresh()) {
    response = await send(path, options, sessionStorage.getItem(ACCESS));
  }
  if (response.status === 401) return toLogin("expired");
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof body === "object" ? body : {message: body});
  return options.withHeaders ? {body, headers: response.headers} : body;
}

const RANK = {viewer: 0, operator: 1, admin: 2};
export const may = (user, role) => RANK[user.role] >= RANK[role];

// Who is logged in; shows the name, the admin-only navigation, and wires the logout button.
export async function session() {
  if (!sessionStorage.getItem(ACCESS)) return toLogin("login");
  const user = await api("/users/me");
  document.getElementById("who").textContent = `${user.name} (${user.role})`;
  for (const el of document.querySelectorAll("[data-role]")) {
    el.hidden = !may(user, el.dataset.role);
  }
  document.getElementById("logout").addEventListener("click", logout);
  return user;
}

async function logout() {
  // Revoke both: a stolen copy of either is worth nothing after. keepalive lets the revocations finish
  // after the page has gone, so the page waits for them a moment only (a server busy with a page's charts
  // may queue them for longer).
  const revocations = [ACCESS, REFRESH].map((key) => sessionStorage.getItem(key)).filter(Boolean)
    .map((token) => send("/auth/logout", {method: "POST", keepalive: true}, token).catch(() => {}));
  await Promise.race([Promise.all(revocations), new Promise((done) => setTimeout(done, 2000))]);
  return toLogin("logged_out");
}

// The page's status line, under its title: what just happened, or what went wrong.
export function say(text, kind = "status") {
  const el = document.getElementById("status");
  el.textContent = text;
  el.classList.toggle("error", kind === "error");
}

// Text for a table cell: a node, so that nothing from the API is ever parsed as HTML.
export function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "";
  row.append(td);
  return td;
}
