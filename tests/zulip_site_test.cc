// Zulip's site normalisation, written once (daemon/config/zulip_site.h): the API base URL the
// client builds requests from, and the site root the configuration stores.
#include "daemon/config/zulip_site.h"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace zb {
namespace {

// The two copies this file's functions replaced, kept here to show that each caller's
// answers did not change.
std::string ConfigNormalizeSiteBefore(std::string_view site) {
  std::string s(site);
  if (s.rfind("localhost", 0) == 0) {
    s = "http://" + s;
  } else if (s.rfind("http", 0) != 0) {
    s = "https://" + s;
  }
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (s.size() >= 4 && s.compare(s.size() - 4, 4, "/api") == 0) s.resize(s.size() - 4);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::string ClientBaseUrlBefore(std::string_view site) {
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

const std::vector<std::string> kSites = {
    "",
    "/",
    "api",
    "/api",
    "/api/",
    "chat.example.com",
    "chat.example.com/",
    "chat.example.com///",
    "https://chat.example.com",
    "https://chat.example.com/",
    "https://chat.example.com/api",
    "https://chat.example.com/api/",
    "https://chat.example.com/api//",
    "https://chat.example.com//api",
    "https://chat.example.com/api/api",
    "https://chat.example.com/API",
    "https://chat.example.com/zulip",
    "https://chat.example.com/zulip/api",
    "https://chat.example.com/apis",
    "http://10.0.0.1:9991",
    "localhost",
    "localhost:9991/",
    "localhost.example.com",
    "httpbin.example.com",
    "ftp://chat.example.com",
};

TEST(ZulipSiteTest, ApiBaseUrlIsThePythonBindingsRule) {
  EXPECT_EQ(ZulipApiBaseUrl("chat.example.com"), "https://chat.example.com/api/");
  EXPECT_EQ(ZulipApiBaseUrl("localhost:9991"), "http://localhost:9991/api/");
  EXPECT_EQ(ZulipApiBaseUrl("https://x.zulipchat.com/api//"), "https://x.zulipchat.com/api/");
  // Only slashes at the end go: python-zulip-api keeps a doubled one before "api".
  EXPECT_EQ(ZulipApiBaseUrl("https://x.example.com//api"), "https://x.example.com//api/");
  // A value starting with "http" is taken as having its scheme, as in Python.
  EXPECT_EQ(ZulipApiBaseUrl("httpbin.example.com"), "httpbin.example.com/api/");
}

TEST(ZulipSiteTest, NormalizeSiteIsTheBaseUrlWithoutApi) {
  EXPECT_EQ(NormalizeSite("chat.example.com///"), "https://chat.example.com");
  EXPECT_EQ(NormalizeSite("https://x.zulipchat.com/api//"), "https://x.zulipchat.com");
  EXPECT_EQ(NormalizeSite("https://x.example.com//api"), "https://x.example.com");
  EXPECT_EQ(NormalizeSite("https://x.example.com/api/api"), "https://x.example.com/api");
  EXPECT_EQ(NormalizeSite("https://x.example.com/apis"), "https://x.example.com/apis");
}

TEST(ZulipSiteTest, EachCallerGetsWhatItGotBefore) {
  for (const std::string& site : kSites) {
    EXPECT_EQ(NormalizeSite(site), ConfigNormalizeSiteBefore(site)) << site;
    EXPECT_EQ(ZulipApiBaseUrl(site), ClientBaseUrlBefore(site)) << site;
  }
}

TEST(ZulipSiteTest, TheStoredRootLeadsToTheSameBaseUrlForOrdinarySites) {
  // The daemon hands AccountConfig::site (already a root) to the client.
  for (std::string_view site :
       {"chat.example.com", "https://chat.example.com/", "https://chat.example.com/api",
        "https://chat.example.com/zulip/api/", "localhost:9991", "http://10.0.0.1:9991"}) {
    EXPECT_EQ(ZulipApiBaseUrl(NormalizeSite(site)), ZulipApiBaseUrl(site)) << site;
  }
  // The exceptions: a root that itself ends in "/api", and a doubled slash before "/api".
  EXPECT_EQ(ZulipApiBaseUrl(NormalizeSite("https://x.example.com/api/api")),
            "https://x.example.com/api/");
  EXPECT_EQ(ZulipApiBaseUrl(NormalizeSite("https://x.example.com//api")),
            "https://x.example.com/api/");
}

}  // namespace
}  // namespace zb
