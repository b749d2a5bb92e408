// The upload page: each picked (or dropped) file uploads at once over the relay's tus door with
// tus-js-client, with its own progress bar and alt text field. A dropped connection is retried;
// after a reload, picking the same file again resumes it where it stopped (tus-js-client keeps
// the upload's URL in localStorage). "Send" waits for the uploads, then sends the form itself
// with the uploads' ids: the server makes one post of them (relay/web/app/upload.py).
// Without this file the form still works: it then sends the files itself.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  if (!form || !window.tus || !window.tus.isSupported) return;
  const picker = document.getElementById("file");
  const drop = document.getElementById("drop");
  const chosen = document.getElementById("chosen");
  const sendStatus = document.getElementById("send-status");
  const csrf = form.querySelector('input[name="csrf_token"]').value;
  const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
  const entries = [];
  let sending = false;

  function label(key, values) {
    let text = form.dataset["label" + key] || key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.split("%(" + name + ")s").join(String(value));
    }
    return text.split("%%").join("%");
  }

  // Without JavaScript alt texts come one a line; here each file has its own field.
  const altLines = document.getElementById("alt-lines");
  if (altLines) altLines.remove();

  function percent(sent, total) {
    return total ? Math.floor((sent / total) * 100) : 100;
  }

  function addFile(file) {
    const n = entries.length + 1;
    const li = document.createElement("li");
    li.className = "chosen-file";
    const name = document.createElement("span");
    name.className = "filename";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", label("Progress", { name: file.name }));
    const state = document.createElement("span");
    state.className = "upload-state";
    state.setAttribute("role", "status");
    state.textContent = label("Waiting");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    remove.setAttribute("aria-label", label("Remove", { name: file.name }));
    const alt = document.createElement("div");
    alt.className = "field";
    const altLabel = document.createElement("label");
    altLabel.htmlFor = "alt-" + n;
    altLabel.textContent = label("Alt", { name: file.name });
    const altInput = document.createElement("textarea");
    altInput.id = "alt-" + n;
    altInput.name = "alt";
    altInput.rows = 2;
    altInput.setAttribute("aria-describedby", "alt-hint-" + n);
    const altHint = document.createElement("p");
    altHint.id = "alt-hint-" + n;
    altHint.className = "meta";
    altHint.textContent = label("AltHint");
    alt.append(altLabel, altInput, altHint);
    const head = document.createElement("div");
    head.className = "chosen-head";
    head.append(name, bar, state, remove);
    li.append(head, alt);
    chosen.appendChild(li);

    const entry = { file, li, bar, state, done: false, failed: false, id: null, waiters: [] };
    const upload = new window.tus.Upload(file, {
      endpoint: form.dataset.endpoint,
      chunkSize: Number(form.dataset.chunk),
      retryDelays: RETRY_DELAYS,
      headers: { [form.dataset.csrfHeader]: csrf },
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream", wait: "1" },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress(sent, total) {
        bar.value = percent(sent, total);
        state.textContent = label(entry.resumed ? "Resuming" : "Uploading", { percent: bar.value });
      },
      onShouldRetry(err, attempt, options) {
        const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        if (status === 401) return false; // signed out: trying again will not help
        state.textContent = navigator.onLine ? label("Retrying") : label("Offline");
        return status === 0 || status === 409 || status === 423 || status >= 500;
      },
      onError(err) {
        const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        if (status === 0 && !navigator.onLine) {
          state.textContent = label("Offline"); // restarted by the "online" event below
          entry.paused = true;
          return;
        }
        entry.failed = true;
        state.textContent =
          status === 401 ? label("Signin") : label("Failed", { reason: err.message.split("\n")[0] });
        li.classList.add("failed");
        settle(entry);
      },
      onSuccess() {
        entry.done = true;
        entry.id = upload.url.split("/").pop();
        bar.value = 100;
        state.textContent = label("Done");
        li.classList.add("done");
        settle(entry);
      },
    });
    entry.upload = upload;
    remove.addEventListener("click", () => {
      upload.abort(true).catch(() => {}); // terminates it on the relay too
      entries.splice(entries.indexOf(entry), 1);
      entry.removed = true;
      settle(entry);
      li.remove();
      picker.focus();
    });
    entries.push(entry);
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        entry.resumed = true;
      }
      upload.start();
    });
  }

  function settle(entry) {
    for (const resolve of entry.waiters.splice(0)) resolve();
  }

  function finished(entry) {
    if (entry.done || entry.failed || entry.removed) return Promise.resolve();
    return new Promise((resolve) => entry.waiters.push(resolve));
  }

  function addFiles(files) {
    for (const file of Array.from(files)) addFile(file);
  }

  picker.addEventListener("change", () => {
    addFiles(picker.files);
    picker.value = ""; // the files go by tus, never with the form
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
  });
  window.addEventListener("online", () => {
    for (const entry of entries) {
      if (entry.paused) {
        entry.paused = false;
        entry.upload.start();
      }
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (sending) return;
    sending = true;
    sendStatus.textContent = label("Sending");
    Promise.all(entries.map(finished)).then(() => {
      sending = false;
      if (entries.some((entry) => entry.failed)) {
        sendStatus.textContent = "";
        const first = entries.find((entry) => entry.failed);
        first.li.querySelector("button.remove").focus();
        return;
      }
      form.elements.uploads.value = entries.map((entry) => entry.id).join(",");
      picker.disabled = true; // the files are on the relay already
      form.submit();
    });
  });
})();
