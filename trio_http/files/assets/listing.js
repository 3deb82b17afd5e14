// The directory listing for every visitor: the filter box and local dates.
// The page works without this script; it only adds to it. Inlined by trio_http/files/listing.py.
"use strict";
(() => {
  document.documentElement.classList.add("js");
  const filter = document.getElementById("filter");

  // Hide the rows whose names do not contain the typed text (case-insensitive). Pressing
  // Enter still submits the form, which searches the whole tree below this folder (?q=).
  function applyFilter() {
    const text = filter ? filter.value.trim().toLocaleLowerCase() : "";
    let shown = 0;
    for (const row of document.querySelectorAll("#listing tbody tr[data-name]")) {
      const match = !text || row.dataset.name.toLocaleLowerCase().includes(text);
      row.toggleAttribute("hidden", !match);
      if (match) shown += 1;
    }
    const none = document.getElementById("no-match");
    if (none) none.toggleAttribute("hidden", shown > 0 || !text);
  }

  // Dates are sent in UTC (the page is the same for everyone); show them in local time.
  function localDates() {
    const pad = (n) => String(n).padStart(2, "0");
    for (const time of document.querySelectorAll("#listing time[datetime]")) {
      const date = new Date(time.getAttribute("datetime"));
      if (Number.isNaN(date.getTime())) continue;
      time.textContent =
        `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
        `${pad(date.getHours())}:${pad(date.getMinutes())}`;
    }
  }

  if (filter) {
    filter.addEventListener("input", applyFilter);
    // Escape clears the filter, as in other file managers.
    filter.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        filter.value = "";
        applyFilter();
      }
    });
  }
  // upload.js replaces the table body after a change; the new rows get the same treatment.
  document.addEventListener("listing:refreshed", () => {
    localDates();
    applyFilter();
  });
  localDates();
  applyFilter();
})();
