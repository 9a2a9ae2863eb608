// Every way a file can enter the page (drop, browse by click or keyboard, paste) ends in one callback that gets a
// plain array of Files.

function carriesFiles(event) {
  return Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
}

// Clipboard images all arrive as "image.png"; a time stamp tells several pastes apart in the results list.
function namePasted(file, index) {
  const stamp = new Date().toTimeString().slice(0, 8).replaceAll(":", "");
  const extension = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
  const suffix = index ? `-${index + 1}` : "";
  return new File([file], `pasted-${stamp}${suffix}.${extension}`, { type: file.type });
}

/** Listen for files dropped on the page, chosen through the drop zone's file input, or pasted. */
export function initUpload({ dropZone, fileInput, onFiles }) {
  const browse = () => fileInput.click();
  dropZone.addEventListener("click", browse);
  dropZone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault(); // Space would scroll the page
      browse();
    }
  });
  fileInput.addEventListener("change", () => {
    const files = [...fileInput.files];
    fileInput.value = ""; // so choosing the same file again still fires "change"
    if (files.length) onFiles(files);
  });

  // Files dropped anywhere on the page are added: the drop zone is only the visible invitation, and a file that
  // lands beside it would otherwise make the browser leave the page to open it. While files are dragged over the
  // page the zone lights up. dragenter/dragleave fire for every element crossed; counting them keeps it steady.
  let depth = 0;
  const setDragging = (on) => dropZone.toggleAttribute("data-dragging", on);
  window.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    setDragging(true);
  });
  window.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // this is what makes the page a valid drop target
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) setDragging(false);
  });
  window.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    setDragging(false);
    const files = [...event.dataTransfer.files];
    if (files.length) onFiles(files);
  });

  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (!files.length) return; // a text paste stays an ordinary paste
    event.preventDefault();
    onFiles(files.map(namePasted));
  });
}
