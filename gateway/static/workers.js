// The workers table, live: the listing comes over SSE every few seconds and replaces the rows
// (built with textContent: nothing of a worker's name or queues is read as HTML).
(function () {
  const body = document.getElementById("workers");
  if (!body) return;
  const events = new EventSource("/dashboard/workers/events");

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (text !== undefined) td.textContent = text;
    row.append(td);
    return td;
  }

  function workerRow(worker) {
    const row = document.createElement("tr");
    row.id = `worker-${worker.name}`;
    row.className = worker.parent ? "pool" : "main";
    cell(row, worker.name, "name");
    const state = document.createElement("span");
    state.className = `state ${worker.state}`;
    state.textContent = worker.state;
    cell(row).append(state);
    cell(row, worker.celery_hostname);
    cell(row, worker.queues.length ? worker.queues.join(", ") : "all");
    cell(row, String(worker.concurrency), "number");
    const running = cell(row, undefined, "running");
    for (const id of worker.running_task_ids) {
      const link = document.createElement("a");
      link.href = `/dashboard/tasks/${id}`;
      link.textContent = id.slice(0, 8);
      running.append(link, " ");
    }
    cell(row, worker.start_time);
    cell(row, worker.heartbeat_time);
    cell(row, worker.version);
    return row;
  }

  events.addEventListener("workers", (message) => {
    const workers = JSON.parse(message.data);
    body.replaceChildren(...workers.map(workerRow));
    if (location.hash) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.classList.add("target");
  });
  events.addEventListener("problem", () => events.close());
})();
