// Stripe's Payment Element on the checkout page: it collects the card (or wallet) and
// confirms the PaymentIntent in the browser; Stripe then sends the parent to the return
// URL, where the server reads the payment back. Card details never reach our servers.
(function () {
  "use strict";
  var form = document.getElementById("checkout");
  if (!form) return;
  var button = form.querySelector("button[type=submit]");
  var message = document.getElementById("checkout-error");

  function show(text) {
    message.textContent = text;
    message.hidden = false;
  }

  if (typeof window.Stripe !== "function") {
    show(form.dataset.unavailable);
    return;
  }
  var options = { locale: form.dataset.locale };
  if (form.dataset.account) options.stripeAccount = form.dataset.account;
  var stripe = window.Stripe(form.dataset.key, options);
  var elements = stripe.elements({ clientSecret: form.dataset.secret });
  var element = elements.create("payment");
  element.mount("#payment-element");
  element.on("ready", function () {
    button.disabled = false;
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    message.hidden = true;
    stripe
      .confirmPayment({ elements: elements, confirmParams: { return_url: form.dataset.returnUrl } })
      .then(function (result) {
        // Only an error comes back here: on success Stripe leaves for the return URL.
        if (result.error) show(result.error.message);
        button.disabled = false;
      });
  });
})();
