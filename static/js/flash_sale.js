/* A flash sale's page (templates/campaigns/public_flash.html). The page is kept in a cache
 * and served as it is to every visitor (app.pagecache), so what is each visitor's own is
 * made here, in the browser:
 * - the buy form's attempt key: made once when the page loads, so a tap sent twice (a
 *   double tap, a resend after a slow answer) is one attempt (app.campaigns.stock);
 * - the buy button, opened at the start and closed at the end on the server's clock (the
 *   page carries it in data-server-now on <body>; the phone's own clock only measures the
 *   time passed since, as in static/js/countdown.js). Whatever this shows, the server
 *   refuses an attempt outside the sale's window. */
(function () {
  "use strict";

  function newKey() {
    var cryptoApi = window.crypto;
    if (cryptoApi && typeof cryptoApi.randomUUID === "function") return cryptoApi.randomUUID();
    var bytes = new Uint8Array(16);
    if (cryptoApi && cryptoApi.getRandomValues) cryptoApi.getRandomValues(bytes);
    else for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    return Array.prototype.map
      .call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); })
      .join("");
  }

  Array.prototype.forEach.call(document.querySelectorAll("input[data-attempt]"), function (input) {
    if (!input.value) input.value = newKey(); // kept when the server sent the form back
  });

  var serverNow = Date.parse(document.body.getAttribute("data-server-now"));
  var buttons = document.querySelectorAll("button[data-opens-at], button[data-closes-at]");
  if (isNaN(serverNow) || !buttons.length) return;
  var offset = serverNow - Date.now();

  function instant(el, name) {
    var value = el.getAttribute(name);
    return value ? Date.parse(value) : NaN;
  }

  function tick() {
    var now = Date.now() + offset;
    Array.prototype.forEach.call(buttons, function (button) {
      var opens = instant(button, "data-opens-at");
      var closes = instant(button, "data-closes-at");
      if (!isNaN(closes) && now >= closes) {
        button.disabled = true;
        button.textContent = button.getAttribute("data-closed-label");
        button.removeAttribute("data-opens-at");
        return;
      }
      if (!isNaN(opens) && now >= opens) {
        button.removeAttribute("data-opens-at");
        button.disabled = false;
        button.textContent = button.getAttribute("data-open-label");
        Array.prototype.forEach.call(document.querySelectorAll("[data-until-open]"), function (el) {
          el.hidden = true; // "remind me" has nothing left to remind of
        });
      }
    });
  }

  tick();
  setInterval(tick, 250);
})();
