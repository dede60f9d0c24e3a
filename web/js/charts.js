// Chart.js, loaded on first use. Only the reports and campaign pages draw charts, so the
// inbox never pays for the bundle. The file comes from npm at build time (scripts/web-build)
// and is served by us like the rest of web/: nothing is fetched from the internet.

let loading = null;

export function loadChart() {
  if (window.Chart) return Promise.resolve(window.Chart);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = 'vendor/chart.umd.min.js';
      s.onload = () => (window.Chart ? resolve(window.Chart) : reject(new Error('Chart.js did not load')));
      s.onerror = () => {
        loading = null;
        reject(new Error('Chart.js could not be loaded'));
      };
      document.head.append(s);
    });
  }
  return loading;
}

// A chart owned by a canvas: drawing again on the same canvas replaces the old chart, so a
// page can redraw on every refresh without leaking Chart instances.
export async function drawChart(canvas, config) {
  const Chart = await loadChart();
  const old = Chart.getChart(canvas);
  if (old) old.destroy();
  return new Chart(canvas, config);
}
