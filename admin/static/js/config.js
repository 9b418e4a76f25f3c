import {ApiError, api, may, say, session} from "./api.js";

const user = await session();
const editor = CodeMirror.fromTextArea(document.getElementById("editor"), {
  mode: "yaml", lineNumbers: true, readOnly: !may(user, "admin"), screenReaderLabel: "config/lmp.yaml",
});
const problem = document.getElementById("problem");
let etag = null, marked = null;

function mark(line) {
  if (marked !== null) editor.removeLineClass(marked, "background", "bad-line");
  marked = line == null ? null : line - 1;
  if (marked !== null) {
    editor.addLineClass(marked, "background", "bad-line");
    editor.scrollIntoView({line: marked, ch: 0}, 100);
  }
}

async function load() {
  const {body, headers} = await api("/config", {withHeaders: true});
  etag = headers.get("ETag");
  editor.setValue(body);
  mark(null);
  problem.textContent = "";
  say(may(user, "admin") ? "Loaded. Edit and save." : "Loaded (read only: saving needs the admin role).");
}

document.getElementById("reload").addEventListener("click", load);
document.getElementById("save").addEventListener("click", async () => {
  problem.textContent = "";
  try {
    const {headers} = await api("/config", {method: "PUT", body: editor.getValue(), withHeaders: true,
                                            headers: {"Content-Type": "application/yaml", "If-Match": etag}});
    etag = headers.get("ETag");
    mark(null);
    say("Saved. The supervisor follows the new config within seconds.");
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    const detail = err.body.errors || {};
    problem.textContent = err.status === 412 ? "The config changed since you loaded it: reload, then redo your edit."
      : detail.line ? `Not saved: line ${detail.line}: ${detail.reason}` : `Not saved: ${err.message}`;
    mark(detail.line);
    say("Nothing was saved.", "error");
  }
});

await load();
