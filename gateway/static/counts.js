// The counts by status, live over SSE, and a chart of tasks finished per interval (the change
// of the SUCCESS and FAILED counts between two updates).
(function () {
  const history = { SUCCESS: [], FAILED: [] };
  const KEEP = 60;
  let previous = null;
  const events = new EventSource("/dashboard/counts/events");

  function draw(id, values) {
    const top = Math.max(1, ...history.SUCCESS, ...history.FAILED);
    const step = 600 / (KEEP - 1);
    const points = values.map((v, i) => `${(i + KEEP - values.length) * step},${117 - (v / top) * 107}`);
    document.getElementById(id).setAttribute("points", points.join(" "));
  }

  events.addEventListener("counts", (message) => {
    const counts = JSON.parse(message.data);
    for (const [status, count] of Object.entries(counts)) {
      const cell = document.getElementById(`count-${status}`);
      if (cell) cell.textContent = count;
    }
    if (previous !== null) {
      for (const status of ["SUCCESS", "FAILED"]) {
        history[status].push(Math.max(0, counts[status] - previous[status]));
        if (history[status].length > KEEP) history[status].shift();
      }
      draw("succeeded", history.SUCCESS);
      draw("failed", history.FAILED);
    }
    previous = counts;
  });
  events.addEventListener("problem", () => events.close());
})();
