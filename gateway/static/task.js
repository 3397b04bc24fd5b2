// Follows the task of this page over the SSE endpoint (the sign-in cookie authenticates it)
// and updates its status, attempt, result, error and attempts in place.
(function () {
  const page = document.querySelector("dl.task");
  if (!page) return;
  const events = new EventSource(`/v1/tasks/${page.dataset.taskId}/events`);

  function text(id, value) {
    document.getElementById(id).textContent = value;
  }

  function attemptItem(attempt) {
    const item = document.createElement("li");
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    const badge = document.createElement("span");
    badge.className = `status ${attempt.status}`;
    badge.textContent = attempt.status;
    const error = attempt.error_type ? `: ${attempt.error_type}: ${attempt.error_message}` : "";
    const worker = document.createElement("a");
    worker.className = "worker";
    worker.href = `/dashboard/workers#worker-${encodeURIComponent(attempt.worker)}`;
    worker.textContent = attempt.worker;
    summary.append(badge, ` #${attempt.number} on `, worker, error);
    const trace = document.createElement("pre");
    trace.textContent = attempt.traceback;
    details.append(summary, trace);
    item.append(details);
    return item;
  }

  events.addEventListener("status", (message) => {
    const event = JSON.parse(message.data);
    const task = event.task;
    const status = document.getElementById("status");
    status.textContent = task.status;
    status.className = `status ${task.status}`;
    text("attempt", `${task.attempt} / ${task.max_attempts}`);
    text("result", task.result === null ? "" : JSON.stringify(task.result, null, 2));
    text("error", task.error);
    document.getElementById("attempts").replaceChildren(...task.attempts.map(attemptItem));
  });
  // The stream ends after a terminal status; do not let the browser reconnect for ever.
  events.addEventListener("error", () => events.close());
})();
