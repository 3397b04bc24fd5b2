// The task list's "select this page" box ticks or clears every row's box.
(function () {
  const page = document.getElementById("select-page");
  if (!page) return;
  page.addEventListener("change", () => {
    for (const box of document.querySelectorAll("input[name=task_id]")) box.checked = page.checked;
  });
})();
