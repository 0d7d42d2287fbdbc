// The web app's static files (server/web/assets/ and the charting library installed by npm
// into the build tree), embedded into pumptwind at build time (embed_assets.cmake writes
// web_assets.cc), so the binary serves them with no install directory.
#ifndef PUMPTWIN_SERVER_WEB_WEB_ASSETS_H_
#define PUMPTWIN_SERVER_WEB_WEB_ASSETS_H_

#include <cstddef>
#include <string_view>

namespace pumptwin::server::web {

struct WebAsset {
  std::string_view path;          // under /app/, e.g. "app.js", "vendor/uPlot.esm.js"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view data;
};

// The asset at `path` (relative to /app/), or nullptr.
const WebAsset* FindWebAsset(std::string_view path);
// Every asset (for tests), `*count` of them.
const WebAsset* WebAssets(size_t* count);

}  // namespace pumptwin::server::web

#endif  // PUMPTWIN_SERVER_WEB_WEB_ASSETS_H_
