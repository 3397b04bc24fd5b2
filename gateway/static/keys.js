// Keyboard shortcuts on every page: 1-7 open the sections, / searches, j and k move through the
// rows of the page's first table, o or Enter opens the row, x ticks its box, ? shows the help.
(function () {
  const help = document.getElementById("keys");
  const sections = [...document.querySelectorAll("nav[aria-label=Sections] a")];
  let current = -1;

  function rows() {
    return [...document.querySelectorAll("main table tbody tr")].filter((row) => row.querySelector("a, input"));
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    all[current]?.classList.remove("current");
    current = Math.max(0, Math.min(all.length - 1, current + step));
    all[current].classList.add("current");
    all[current].scrollIntoView({ block: "nearest" });
  }

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]") && target.type !== "checkbox";
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target) || help?.open) return;
    const row = rows()[current];
    if (/^[1-9]$/.test(event.key) && sections[Number(event.key) - 1]) {
      location.href = sections[Number(event.key) - 1].href;
    } else if (event.key === "/") {
      const search = document.querySelector("input[type=search]");
      if (!search) return;
      search.focus();
    } else if (event.key === "j" || event.key === "k") {
      move(event.key === "j" ? 1 : -1);
    } else if ((event.key === "o" || (event.key === "Enter" && event.target === document.body)) && row) {
      row.querySelector("a")?.click();
    } else if (event.key === "x" && row) {
      row.querySelector("input[type=checkbox]")?.click();
    } else if (event.key === "?") {
      help?.showModal();
    } else {
      return;
    }
    event.preventDefault();
  });
})();
