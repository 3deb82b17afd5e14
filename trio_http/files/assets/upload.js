// Uploads, new folders and deletes on the directory listing. Sent only to visitors who may
// write here (listing.py renders it with can_write=True). Inlined by trio_http/files/listing.py.
//
// Each file goes up with a plain PUT of its bytes to <this folder's URL><relative path>; the
// server creates the missing parent folders. When the page names a tus endpoint
// (data-upload-url) files larger than TUS_THRESHOLD use the tus 1.0.0 resumable protocol
// (https://tus.io/protocols/resumable-upload) instead, so a cancelled or dropped upload
// resumes where the server says it stopped.
"use strict";
(() => {
  const TUS_THRESHOLD = 8 * 1024 * 1024;
  const TUS_CHUNK = 8 * 1024 * 1024;
  const TUS_HEADERS = { "Tus-Resumable": "1.0.0" };
  // Waits before resending a tus piece after a dropped connection, a 423 (another request
  // still writing) or a 5xx; then HEAD tells where to go on.  Beyond them the upload fails
  // and resumes when the same file is sent again.
  const TUS_RETRY_DELAYS = [1000, 2000, 4000, 8000, 16000];
  const PARALLEL = 3; // files sent at once; the others wait in the queue

  const body = document.body;
  const here = location.pathname; // this folder's URL, ending in "/"
  const dirPath = body.dataset.path || "/"; // the same, decoded, relative to the served root
  const tusEndpoint = body.dataset.uploadUrl || null;
  const uploads = document.getElementById("uploads");
  const messages = document.getElementById("messages");

  const encodePath = (relative) => relative.split("/").map(encodeURIComponent).join("/");

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showError(text) {
    const line = element("p", "error");
    line.append(element("span", "", text));
    const close = element("button", "", "\u00d7");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => line.remove());
    line.append(close);
    messages.append(line);
  }

  // "404 Not Found: no such file": the status and the server's own message.
  function explain(status, statusText, text) {
    const detail = (text || "").trim();
    return `${status} ${statusText}`.trim() + (detail ? `: ${detail}` : "");
  }
  const explainResponse = async (response) =>
    explain(response.status, response.statusText, await response.text());
  const explainXhr = (xhr) => explain(xhr.status, xhr.statusText, xhr.responseText);

  // ------------------------------------------------------------------ refreshing the table

  let refreshing = null;
  // Replace the table body with a fresh one from the server (the messages and the upload
  // list stay on screen, which a reload would lose).
  async function refresh() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      try {
        const response = await fetch(location.href, {
          headers: { Accept: "text/html" },
          cache: "no-store",
        });
        if (!response.ok) throw new Error(await explainResponse(response));
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector("#listing tbody");
        const current = document.querySelector("#listing tbody");
        if (!fresh || !current) throw new Error("unexpected page");
        current.replaceWith(document.adoptNode(fresh));
        document.dispatchEvent(new Event("listing:refreshed"));
      } catch (error) {
        location.reload();
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  // ------------------------------------------------------------------ one upload

  class Upload {
    constructor(file, relative) {
      this.file = file;
      this.relative = relative; // the path below this folder, "/"-separated
      this.xhr = null;
      this.cancelled = false;
      this.finished = false;
      this.resumable = Boolean(tusEndpoint) && file.size > TUS_THRESHOLD;
      this.row = element("li", "waiting");
      this.row.dataset.path = relative;
      this.row.append(element("span", "file-name", relative));
      this.bar = element("progress");
      this.bar.max = Math.max(file.size, 1);
      this.bar.value = 0;
      this.state = element("span", "state", "Waiting");
      this.cancelButton = element("button", "cancel", "\u00d7");
      this.cancelButton.type = "button";
      this.cancelButton.title = `Cancel ${relative}`;
      this.cancelButton.setAttribute("aria-label", `Cancel ${relative}`);
      this.cancelButton.addEventListener("click", () => this.cancel());
      this.row.append(this.bar, this.state, this.cancelButton);
      uploads.append(this.row);
    }

    cancel() {
      if (this.finished) return;
      this.cancelled = true;
      if (this.xhr) this.xhr.abort();
      this.finish("cancelled", this.resumable ? "Cancelled (resumes if sent again)" : "Cancelled");
    }

    progress(sent) {
      const size = this.file.size;
      this.bar.value = Math.min(sent, size);
      this.state.textContent = size ? `${Math.floor((100 * Math.min(sent, size)) / size)} %` : "";
    }

    finish(kind, text) {
      this.finished = true;
      this.row.className = kind;
      this.state.textContent = text;
      this.cancelButton.toggleAttribute("hidden", true);
    }

    async run() {
      this.row.className = "sending";
      this.progress(0);
      try {
        if (this.resumable) await this.sendTus();
        else await this.sendPut();
        this.bar.value = this.bar.max;
        this.finish("done", "Done");
        return true;
      } catch (error) {
        if (this.cancelled) return false;
        this.finish("failed", error.message);
        showError(`Upload of ${this.relative} failed: ${error.message}`);
        return false;
      }
    }

    // One request through XMLHttpRequest (fetch has no upload progress); resolves with the
    // finished request whatever its status, rejects on a network error or a cancel.
    request(method, url, headers, data, onProgress) {
      return new Promise((resolve, reject) => {
        if (this.cancelled) {
          reject(new Error("cancelled"));
          return;
        }
        const xhr = new XMLHttpRequest();
        this.xhr = xhr;
        xhr.open(method, url);
        for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
        if (onProgress) xhr.upload.onprogress = (event) => onProgress(event.loaded);
        xhr.onload = () => resolve(xhr);
        xhr.onerror = () => reject(new Error("the connection failed"));
        xhr.onabort = () => reject(new Error("cancelled"));
        xhr.send(data === undefined ? null : data);
      });
    }

    async sendPut() {
      const xhr = await this.request("PUT", here + encodePath(this.relative), {}, this.file, (n) =>
        this.progress(n),
      );
      if (xhr.status < 200 || xhr.status >= 300) throw new Error(explainXhr(xhr));
    }

    // tus 1.0.0: creation (POST with Upload-Length and Upload-Metadata), then PATCH from the
    // offset the server has, chunk by chunk; HEAD tells the offset of an upload made earlier.
    async sendTus() {
      const file = this.file;
      const target = dirPath.replace(/^\/+/, "") + this.relative; // relative to the served root
      const key = `trio-http tus ${JSON.stringify([target, file.size, file.lastModified])}`;
      let url = localStorage.getItem(key);
      let offset = url ? await this.tusOffset(url) : null;
      if (offset === null) {
        if (url) localStorage.removeItem(key);
        const xhr = await this.request("POST", tusEndpoint, {
          ...TUS_HEADERS,
          "Upload-Length": String(file.size),
          "Upload-Metadata": `filename ${base64(target)}`,
        });
        if (xhr.status === 503 || xhr.status === 429) {
          // The server (or our share of it) has all the unfinished uploads it takes: send
          // this one whole.
          this.resumable = false;
          return this.sendPut();
        }
        const created = xhr.getResponseHeader("Location");
        if (xhr.status !== 201 || !created) throw new Error(explainXhr(xhr));
        url = new URL(created, location.href).href;
        localStorage.setItem(key, url);
        offset = 0;
      } else {
        this.state.textContent = "Resuming";
      }
      let retried = false;
      let failures = 0;
      while (offset < file.size) {
        const start = offset;
        const chunk = file.slice(start, Math.min(start + TUS_CHUNK, file.size));
        let xhr;
        try {
          xhr = await this.request(
            "PATCH",
            url,
            {
              ...TUS_HEADERS,
              "Upload-Offset": String(start),
              "Content-Type": "application/offset+octet-stream",
            },
            chunk,
            (n) => this.progress(start + n),
          );
        } catch (error) {
          if (this.cancelled || failures >= TUS_RETRY_DELAYS.length) throw error;
          offset = await this.tusRetry(url, TUS_RETRY_DELAYS[failures++], start, error);
          continue;
        }
        if (xhr.status === 204 || xhr.status === 200) {
          offset = readOffset(xhr);
          if (offset === null || offset <= start) throw new Error("the server made no progress");
          retried = false;
          failures = 0;
        } else if ((xhr.status === 423 || xhr.status >= 500) && failures < TUS_RETRY_DELAYS.length) {
          const error = new Error(explainXhr(xhr));
          offset = await this.tusRetry(url, TUS_RETRY_DELAYS[failures++], start, error);
        } else if (xhr.status === 409 && !retried) {
          // Our offset was not the server's (an earlier PATCH got further than we saw).
          retried = true;
          offset = await this.tusOffset(url);
          if (offset === null) throw new Error(explainXhr(xhr));
        } else {
          if (xhr.status === 404 || xhr.status === 410) localStorage.removeItem(key);
          throw new Error(explainXhr(xhr));
        }
        this.progress(offset);
      }
      localStorage.removeItem(key);
    }

    // After a failed piece: wait (a cancel ends the wait), then ask the server how much it
    // has.  If that request fails too, go on from *start*: a 409 will correct it.
    async tusRetry(url, delay, start, error) {
      this.state.textContent = "Reconnecting";
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.cancelled) throw new Error("cancelled");
      let offset;
      try {
        offset = await this.tusOffset(url);
      } catch (headError) {
        if (this.cancelled) throw headError;
        return start;
      }
      if (offset === null) throw error; // the server no longer knows the upload
      this.state.textContent = "Resuming";
      return offset;
    }

    // The server's offset for an upload URL, or null when it no longer knows the upload.
    async tusOffset(url) {
      const xhr = await this.request("HEAD", url, TUS_HEADERS);
      return xhr.status === 200 || xhr.status === 204 ? readOffset(xhr) : null;
    }
  }

  function readOffset(xhr) {
    const value = xhr.getResponseHeader("Upload-Offset");
    return value !== null && /^\d+$/.test(value.trim()) ? Number(value.trim()) : null;
  }

  // Upload-Metadata values are base64 of the UTF-8 bytes (tus 1.0.0, Upload-Metadata).
  function base64(text) {
    let binary = "";
    for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  // ------------------------------------------------------------------ the queue

  const queue = [];
  let active = 0;
  let pending = 0; // folders still being read after a drop

  function enqueue(file, relative) {
    queue.push(new Upload(file, relative));
    pump();
  }

  function pump() {
    while (active < PARALLEL && queue.length) {
      const upload = queue.shift();
      if (upload.cancelled) continue;
      active += 1;
      upload.run().finally(() => {
        active -= 1;
        pump();
        settle();
      });
    }
  }

  // Leaving the page would end the uploads in progress: the browser asks first.
  window.addEventListener("beforeunload", (event) => {
    if (active || queue.length) event.preventDefault();
  });

  // When nothing is left to send, show the new state of the folder.
  function settle() {
    if (!active && !queue.length && !pending) refresh();
  }

  // ------------------------------------------------------------------ new folders, deletes

  // MKCOL (RFC 4918 §9.3): 201 created, 405 exists, 409 parent missing.
  async function makeFolder(relative, { quietIfExists }) {
    const response = await fetch(here + encodePath(relative) + "/", { method: "MKCOL" });
    if (response.status === 201 || (quietIfExists && response.status === 405)) return true;
    showError(`Could not create folder ${relative}: ${await explainResponse(response)}`);
    return false;
  }

  const newFolder = document.getElementById("new-folder");
  newFolder.addEventListener("click", async () => {
    const answer = prompt("Name of the new folder:");
    if (answer === null) return;
    const name = answer.trim();
    if (!name || name === "." || name === ".." || name.includes("/")) {
      showError(`Not a folder name: \u201c${answer}\u201d`);
      return;
    }
    try {
      if (await makeFolder(name, { quietIfExists: false })) await refresh();
    } catch (error) {
      showError(`Could not create folder ${name}: ${error.message}`);
    }
  });

  document.getElementById("listing").addEventListener("click", async (event) => {
    const button = event.target.closest("button.delete");
    if (!button) return;
    const row = button.closest("tr");
    const link = row.querySelector("td.name a");
    const name = row.dataset.name;
    if (!confirm(`Delete \u201c${name}\u201d? This cannot be undone.`)) return;
    try {
      const response = await fetch(link.href, { method: "DELETE" });
      if (!response.ok) {
        showError(`Could not delete ${name}: ${await explainResponse(response)}`);
        return;
      }
      row.remove();
      await refresh();
    } catch (error) {
      showError(`Could not delete ${name}: ${error.message}`);
    }
  });

  // ------------------------------------------------------------------ choosing files

  for (const id of ["upload-files", "upload-folder"]) {
    const input = document.getElementById(id);
    input.addEventListener("change", () => {
      // A folder's files carry their path below the chosen folder's parent.
      for (const file of Array.from(input.files)) {
        enqueue(file, file.webkitRelativePath || file.name);
      }
      input.value = ""; // choosing the same files again fires "change" again
    });
  }

  // Drag and drop of files and folders. The entries must be taken from the DataTransfer
  // during the drop event itself; the folders are read afterwards.
  const carriesFiles = (event) =>
    event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
  let depth = 0; // dragenter/dragleave fire for every child element crossed
  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    depth += 1;
    body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) body.classList.remove("dragging");
  });
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    body.classList.remove("dragging");
    const entries = [];
    const loose = [];
    for (const item of Array.from(event.dataTransfer.items)) {
      if (item.kind !== "file") continue;
      const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
      if (entry) entries.push(entry);
      else if (item.getAsFile()) loose.push(item.getAsFile());
    }
    if (!entries.length && !loose.length) {
      loose.push(...Array.from(event.dataTransfer.files));
    }
    for (const file of loose) enqueue(file, file.name);
    pending += 1;
    (async () => {
      try {
        for (const entry of entries) await walk(entry);
      } catch (error) {
        showError(`Could not read the dropped files: ${error.message || error}`);
      } finally {
        pending -= 1;
        settle();
      }
    })();
  });

  const relativeOf = (entry) => entry.fullPath.replace(/^\/+/, "");

  // A dropped file, or a folder read recursively. Each folder is created first (so empty
  // ones arrive too, and parents exist before their children are sent).
  async function walk(entry) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      enqueue(file, relativeOf(entry));
      return;
    }
    if (!entry.isDirectory) return;
    if (!(await makeFolder(relativeOf(entry), { quietIfExists: true }))) return;
    const reader = entry.createReader();
    for (;;) {
      // readEntries gives a folder's entries in batches; an empty batch ends them.
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child);
    }
  }
})();
