// The way out to a service's sign-in page: follow the page's link at once (the link stays for
// browsers without JavaScript). `replace`, so Back from the service returns to the channels
// page, not to this one, which was the answer to a form.
"use strict";
(() => {
  const link = document.querySelector("a[data-follow]");
  if (link) window.location.replace(link.href);
})();
