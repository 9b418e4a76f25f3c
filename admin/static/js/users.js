import {api, cell, may, say, session} from "./api.js";

const body = document.querySelector("#users tbody");

function row(u) {
  const tr = document.createElement("tr");
  cell(tr, u.name);
  const role = document.createElement("select");
  role.setAttribute("aria-label", `Role of ${u.name}`);
  for (const r of ["viewer", "operator", "admin"]) role.append(new Option(r, r, false, r === u.role));
  role.addEventListener("change", () => act(() => api(`/users/${encodeURIComponent(u.name)}`, {method: "PATCH", json: {role: role.value}}),
                                         `${u.name} is now ${role.value}.`));
  cell(tr, role);
  cell(tr, new Date(u.created_at).toLocaleString());
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete ${u.name}`);
  remove.addEventListener("click", () => act(() => api(`/users/${encodeURIComponent(u.name)}`, {method: "DELETE"}), `${u.name} deleted.`));
  cell(tr, remove);
  return tr;
}

async function act(call, done) {
  try {
    await call();
    say(done);
  } catch (err) {
    say(err.message, "error");
  }
  await load();
}

async function load() {
  body.replaceChildren(...(await api("/users")).map(row));
}

async function main() {
  const user = await session();
  if (!may(user, "admin")) {  // the API would answer 403: say so without asking it
    document.getElementById("new-user").hidden = true;
    say("This page needs the admin role.", "error");
    return;
  }
  document.getElementById("new-user").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = document.getElementById("new-name").value;
    act(() => api("/users", {method: "POST", json: {name, password: document.getElementById("new-password").value,
                                                    role: document.getElementById("new-role").value}}),
        `${name} created.`).then(() => event.target.reset());
  });
  await load();
}

await main();
