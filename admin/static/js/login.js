import {store} from "./api.js";

const REASONS = {
  expired: "Your session has ended (it expired, or was logged out elsewhere): log in again.",
  logged_out: "You are logged out.",
  login: "Log in to see this host.",
};
const params = new URLSearchParams(location.search);
document.getElementById("reason").textContent = REASONS[params.get("reason")] || "";

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  error.textContent = "";
  const response = await fetch("/api/v1/auth/login", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: document.getElementById("username").value,
                          password: document.getElementById("password").value}),
  });
  const body = await response.json();
  if (!response.ok) {
    error.textContent = response.status === 429 ? "Too many attempts: wait a minute and try again."
                                                : body.message || "The login failed.";
    return;
  }
  store(body);
  location.assign(sameOrigin(params.get("next")));
});

// Where to go after the login: `next` if it is a place on this site, else the overview. Checked as the
// browser reads it (a parsed URL), not as text: "/\host" and "/<TAB>/host" look like paths but lead away.
export function sameOrigin(next) {
  if (!next) return "/";
  let url;
  try {
    url = new URL(next, location.origin);
  } catch {
    return "/";
  }
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/";
}
