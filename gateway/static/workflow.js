// Follows the workflow of this page over the SSE endpoint (the sign-in cookie authenticates it):
// each step's change recolors its node; a step the page does not know (spawned since) reloads
// the page, which draws it.
(function () {
  const page = document.querySelector("dl.task[data-workflow-id]");
  if (!page) return;
  const events = new EventSource(`/v1/workflows/${page.dataset.workflowId}/events`);

  function showStatus(status) {
    const badge = document.getElementById("workflow-status");
    badge.textContent = status;
    badge.className = `status ${status}`;
  }

  function showStep(step) {
    const node = document.querySelector(`a.node[data-task-id="${step.task_id}"]`);
    if (!node) return false;
    node.setAttribute("class", `node ${step.status}`);
    node.querySelector(".step-status").textContent = step.status;
    node.querySelector("title").textContent = `${step.name} (${step.kind}): ${step.status}`;
    return true;
  }

  function showAll(workflow) {
    const known = workflow.steps.every(showStep);
    document.getElementById("step-count").textContent = workflow.step_count;
    if (workflow.finish_time) {
      // As the page writes times: 2026-12-07 05:58:06 UTC.
      const when = new Date(workflow.finish_time).toISOString();
      document.getElementById("finish-time").textContent = `${when.slice(0, 19).replace("T", " ")} UTC`;
    }
    showStatus(workflow.status);
    if (!known) window.location.reload();
  }

  events.addEventListener("workflow", (message) => showAll(JSON.parse(message.data).workflow));
  events.addEventListener("step", (message) => {
    const event = JSON.parse(message.data);
    if (!showStep(event.step)) window.location.reload();
    showStatus(event.status);
    if (event.workflow) showAll(event.workflow);
  });
  // The stream ends once the workflow is terminal; do not let the browser reconnect for ever.
  events.addEventListener("error", () => events.close());
})();
