#include "daemon/config/zulip_site.h"

namespace zb {

std::string ZulipApiBaseUrl(std::string_view site) {
  std::string url(site);
  if (url.starts_with("localhost")) {
    url = "http://" + url;
  } else if (!url.starts_with("http")) {
    url = "https://" + url;
  }
  while (url.ends_with('/')) url.pop_back();
  if (!url.ends_with("/api")) url += "/api";
  url += '/';
  return url;
}

std::string NormalizeSite(std::string_view site) {
  std::string root = ZulipApiBaseUrl(site);
  root.resize(root.size() - std::string_view("/api/").size());
  // "https://x//api" has the root "https://x", as it always had in the configuration.
  while (root.ends_with('/')) root.pop_back();
  return root;
}

}  // namespace zb
