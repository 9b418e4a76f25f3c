import {api, cell, may, say, session} from "./api.js";

async function main() {
  const user = await session();
  if (!may(user, "admin")) {  // the API would answer 403: say so without asking it
    say("This page needs the admin role.", "error");
    return;
  }
  const events = await api("/audit?limit=200");
  document.querySelector("#audit tbody").replaceChildren(...events.map((e) => {
    const tr = document.createElement("tr");
    cell(tr, new Date(e.at).toLocaleString());
    cell(tr, e.actor);
    cell(tr, e.action);
    cell(tr, e.target);
    cell(tr, e.detail);  // the whole of it, e.g. every word of a command run as root
    return tr;
  }));
}

await main();
