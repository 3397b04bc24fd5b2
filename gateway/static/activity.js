// The Activity page's charts, live: the server draws them again every few seconds and sends the
// HTML over SSE (escaped by the server's templates, as the page itself is).
(function () {
  const charts = document.getElementById("activity");
  if (!charts) return;
  const queue = encodeURIComponent(charts.dataset.queue || "");
  const events = new EventSource(`/dashboard/activity/events?queue=${queue}`);
  events.addEventListener("activity", (message) => {
    charts.innerHTML = JSON.parse(message.data);
  });
  events.addEventListener("problem", () => events.close());
})();
