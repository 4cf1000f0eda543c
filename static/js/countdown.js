/* Countdowns on server time. The page carries the server's clock (data-server-now on
 * <body>) and each deadline (data-deadline, ISO 8601); the phone's own clock is only used to
 * measure time passing since the page loaded, so a wrong phone clock changes nothing. */
(function () {
  "use strict";
  var serverNow = Date.parse(document.body.getAttribute("data-server-now"));
  if (isNaN(serverNow)) return;
  var offset = serverNow - Date.now();
  var timers = document.querySelectorAll("[data-deadline]");
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var now = Date.now() + offset;
    for (var i = 0; i < timers.length; i++) {
      var el = timers[i];
      var left = Math.floor((Date.parse(el.getAttribute("data-deadline")) - now) / 1000);
      if (left <= 0) {
        el.textContent = el.getAttribute("data-expired") || "00:00:00";
        el.classList.add("countdown-over");
        continue;
      }
      var days = Math.floor(left / 86400);
      var rest = left % 86400;
      var text = pad(Math.floor(rest / 3600)) + ":" + pad(Math.floor(rest % 3600 / 60)) + ":" + pad(rest % 60);
      el.textContent = days > 0 ? (el.getAttribute("data-days") || "{days} d ").replace("{days}", days) + text : text;
    }
  }
  tick();
  setInterval(tick, 1000);
})();
