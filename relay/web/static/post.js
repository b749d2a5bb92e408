// One post's page: while its media are processed or its copies are being sent, the page asks
// /posts/{id}/state.json every few seconds and updates states, progress bars and problems in
// place. Plain DOM, no library: the page works without this file; it only saves the reload.
"use strict";

(function () {
  const article = document.getElementById("onepost");
  const section = document.getElementById("post-status");
  if (!article || !section) return;
  const INTERVAL_MS = 2000;
  const label = (key) =>
    section.dataset["label" + key.charAt(0).toUpperCase() + key.slice(1)] || key;
  const deliveryLabel = (status) => label(status === "failed" ? "notsent" : status);

  function problem(li, text) {
    let span = li.querySelector(".problem");
    if (!text) {
      if (span) span.remove();
      return;
    }
    if (!span) {
      span = document.createElement("span");
      span.className = "problem";
      (li.querySelector(".about") || li).appendChild(span);
    }
    span.textContent = text;
  }

  function updateItem(item) {
    const li = section.querySelector('li.medium[data-item="' + CSS.escape(item.id) + '"]');
    if (!li) return false;  // a medium the page does not know yet: a reload shows it
    const bar = li.querySelector("progress");
    if (bar && item.progress !== null) bar.value = item.progress;
    if (li.dataset.status === item.status) return true;
    li.dataset.status = item.status;
    li.querySelector(".status").textContent = label(item.status);
    if (item.status === "ready" || item.status === "failed") {
      if (bar) bar.remove();
    }
    if (item.thumbnail && !li.querySelector(".thumb img")) {
      const img = document.createElement("img");
      img.src = item.thumbnail;
      img.alt = item.alt;
      img.width = 96;
      img.height = 96;
      li.querySelector(".thumb").replaceChildren(img);
    }
    problem(li, item.problem ? item.problem + " " + item.advice : null);
    if (item.uncaptioned && !li.querySelector(".nocaptions")) {
      const span = document.createElement("span");
      span.className = "nocaptions";
      const strong = document.createElement("strong");
      strong.textContent = label("nocaptions");
      span.append(strong, " ", label("nocaptionsHint"));
      (li.querySelector(".about") || li).appendChild(span);
    }
    return true;
  }

  // A Live Photo's MOV leaves the post once it is paired with its still: its line goes too.
  function dropGone(items) {
    const known = new Set(items.map((item) => item.id));
    section.querySelectorAll("li.medium[data-item]").forEach((li) => {
      if (!known.has(li.dataset.item)) li.remove();
    });
  }

  function deliveryList() {
    let list = section.querySelector("ul.deliveries");
    if (list) return list;
    list = document.createElement("ul");
    list.className = "deliveries";
    list.setAttribute("aria-labelledby", "channels-title");
    const none = document.getElementById("no-deliveries");
    if (none) none.replaceWith(list);
    else section.appendChild(list);
    return list;
  }

  function updateDelivery(d) {
    let li = section.querySelector('li.delivery[data-delivery="' + CSS.escape(d.id) + '"]');
    if (!li) {
      li = document.createElement("li");
      li.dataset.delivery = d.id;
      const channel = document.createElement("span");
      channel.className = "channel";
      channel.textContent = d.channel + ":";
      const status = document.createElement("span");
      status.className = "dstatus";
      status.setAttribute("role", "status");
      li.append(channel, " ", status);
      deliveryList().appendChild(li);
    }
    li.className = "delivery delivery-" + d.status;
    li.querySelector(".dstatus").textContent = deliveryLabel(d.status);
    let link = li.querySelector("a");
    if (d.remote_url && !link) {
      link = document.createElement("a");
      link.textContent = label("view");
      li.querySelector(".dstatus").after(" ", link);
    }
    if (link && d.remote_url) link.href = d.remote_url;
    problem(li, d.problem ? d.problem + " " + d.advice : null);
  }

  function stillChanging(state) {
    return state.status === "processing" || state.deliveries.some((d) => d.status === "pending");
  }

  // After a change to a published post (an edit, a take-down) the copies change on the
  // channels in the background, with no pending state to wait for: watch for a minute.
  let settleRounds = article.dataset.waiting === "settle" ? 30 : 0;

  async function poll() {
    let again = true;
    try {
      const response = await fetch(
        "/posts/" + encodeURIComponent(article.dataset.post) + "/state.json",
        { credentials: "same-origin", headers: { Accept: "application/json" } },
      );
      if (response.ok) {
        const state = await response.json();
        state.items.forEach(updateItem);
        dropGone(state.items);
        state.deliveries.forEach(updateDelivery);
        settleRounds = Math.max(0, settleRounds - 1);
        again = stillChanging(state) || settleRounds > 0;
      } else if (response.status === 401 || response.status === 404) {
        again = false;  // signed out or gone: a reload says which
      }
    } catch (err) {
      // Offline for a moment: the next round tries again.
    }
    if (again) setTimeout(poll, INTERVAL_MS);
  }

  if (article.dataset.waiting !== "no") setTimeout(poll, INTERVAL_MS);
})();
