import {session} from "./api.js";
import {showBoard} from "./charts.js";

await session();
const select = document.getElementById("minutes");
const board = await showBoard("overview", document.getElementById("charts"), () => select.value);
select.addEventListener("change", () => board.refresh());
