// Date and time fields of the staff pages in the page's language (<html lang>), whatever
// the browser's own language: the browser's `datetime-local` on an English browser shows
// mm/dd/yyyy and AM/PM even on a Chinese page. flatpickr (static/vendor) draws the
// calendar; the field the form sends keeps the value the server parses
// (app.forms.DATETIME_FORMATS "%Y-%m-%dT%H:%M", and "%Y-%m-%d" for a date), and a
// second, visible field shows it the way the language writes it. Without JavaScript (or
// if flatpickr did not load) the browser's own input stays, and works.
(function () {
  "use strict";
  if (typeof window.flatpickr !== "function") return;
  var zh = /^zh/i.test(document.documentElement.lang || "");
  var locale =
    zh && window.flatpickr.l10ns.zh
      ? Object.assign({}, window.flatpickr.l10ns.zh, { firstDayOfWeek: 1 }) // weeks start on Monday
      : "default";
  var shown = zh
    ? { date: "Y年n月j日", datetime: "Y年n月j日 H:i" }
    : { date: "j M Y", datetime: "j M Y, H:i" };

  function setUp(input) {
    var withTime = input.type === "datetime-local";
    var picker = window.flatpickr(input, {
      locale: locale,
      enableTime: withTime,
      time_24hr: true,
      minuteIncrement: 5,
      dateFormat: withTime ? "Y-m-d\\TH:i" : "Y-m-d",
      altInput: true,
      altFormat: withTime ? shown.datetime : shown.date,
      allowInput: true, // typed in the shown format, and cleared by deleting it
      disableMobile: true, // a phone's own picker would speak the phone's language
      minDate: input.min || null,
      maxDate: input.max || null,
    });
    var visible = picker.altInput;
    if (!visible) return;
    // The label, the help text and the error belong to the field people see.
    if (input.id) {
      visible.id = input.id;
      input.id = input.id + "-value";
    }
    ["aria-describedby", "aria-invalid", "aria-label"].forEach(function (name) {
      if (input.hasAttribute(name)) visible.setAttribute(name, input.getAttribute(name));
    });
    visible.autocomplete = "off";
    visible.dataset.datepicker = withTime ? "datetime" : "date";
  }

  Array.prototype.forEach.call(
    document.querySelectorAll("input[type=datetime-local], input[type=date]"),
    setUp
  );
})();
