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

  function reasonItem(reason) {
    const item = document.createElement("li");
    item.className = "reason";
    item.dataset.code = reason.code;
    const code = document.createElement("code");
    code.textContent = reason.code;
    const until = reason.until ? ` (until ${new Date(reason.until).toISOString()})` : "";
    item.append(code, ` ${reason.message}${until}`);
    for (const id of reason.task_ids) {
      const link = document.createElement("a");
      link.href = `/dashboard/tasks/${id}`;
      link.textContent = ` ${id.slice(0, 8)}`;
      item.append(link);
    }
    return item;
  }

  // Why it waits, read again at each status change (the sign-in cookie authenticates it).
  async function explain() {
    const response = await fetch(`/v1/tasks/${page.dataset.taskId}:explain`);
    if (!response.ok) return;
    const explained = await response.json();
    const running = document.getElementById("running-on");
    running.hidden = !explained.worker;
    if (explained.worker) {
      const worker = running.querySelector("a.worker");
      worker.textContent = explained.worker;
      worker.href = `/dashboard/workers#worker-${encodeURIComponent(explained.worker)}`;
      running.querySelector("time").textContent = new Date(explained.lease_expire_time).toISOString();
    }
    const items = explained.reasons.map(reasonItem);
    if (!items.length) {
      const none = document.createElement("li");
      none.className = "none";
      const finished = ["SUCCESS", "FAILED", "CANCELLED"].includes(explained.status);
      none.textContent = explained.worker ? "It runs." : finished ? "It has finished." : "Nothing holds it back.";
      items.push(none);
    }
    document.getElementById("reasons").replaceChildren(...items);
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
    explain();
  });
  function number(value) {
    return String(Math.round(value * 100) / 100);
  }

  events.addEventListener("progress", (message) => {
    const progress = JSON.parse(message.data).progress;
    const bar = document.getElementById("progress-bar");
    bar.hidden = false;
    if (progress.total) {
      bar.max = progress.total;
      bar.value = progress.done;
    } else {
      bar.removeAttribute("value"); // no total: an indeterminate bar
    }
    const total = progress.total ? ` / ${number(progress.total)}` : "";
    const said = progress.message ? ` · ${progress.message}` : "";
    text("progress-text", `${number(progress.done)}${total}${said}`);
  });
  // The stream ends after a terminal status; do not let the browser reconnect for ever.
  events.addEventListener("error", () => events.close());
})();
