// Light/dark theme. The inline script in index.html's <head> applies the saved or OS theme before the first paint
// (a module script runs too late for that); this module changes it on request and keeps it in step with the OS.

const STORAGE_KEY = "theme";
const root = document.documentElement;
const osDark = window.matchMedia("(prefers-color-scheme: dark)");

function savedTheme() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage can be blocked (privacy settings); the OS preference still applies
  }
}

function isDark() {
  return root.classList.contains("dark");
}

/** Wire the toggle button: it flips and saves the theme, and reports the state through aria-pressed. */
export function initThemeToggle(button) {
  const sync = () => {
    button.setAttribute("aria-pressed", String(isDark()));
    button.title = isDark() ? "Switch to the light theme" : "Switch to the dark theme";
  };
  button.addEventListener("click", () => {
    const dark = !isDark();
    root.classList.toggle("dark", dark);
    try {
      localStorage.setItem(STORAGE_KEY, dark ? "dark" : "light");
    } catch {
      // not persisted, but the switch still holds for this visit
    }
    sync();
  });
  // Until the reader picks a theme, follow the OS when it switches (e.g. at sunset).
  osDark.addEventListener("change", (event) => {
    if (savedTheme()) return;
    root.classList.toggle("dark", event.matches);
    sync();
  });
  sync();
}
