// Credential sources and ${ENV} substitution. See credentials.h.
#include "daemon/config/credentials.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <regex>
#include <set>
#include <utility>

#include "daemon/base/status.h"
#include "daemon/config/diagnostics.h"

namespace zb::config_internal {
namespace {

constexpr size_t kMaxCredentialFileBytes = size_t{64} * 1024;

const Keys kZuliprcKeys = {"key",         "email",           "site",    "client_cert",
                           "cert_bundle", "client_cert_key", "insecure"};

}  // namespace

bool SubstituteEnv(std::string_view in, const EnvLookup& env, std::string* out,
                   std::string* error) {
  out->clear();
  size_t i = 0;
  while (i < in.size()) {
    if (in.compare(i, 3, "$${") == 0) {
      *out += "${";
      i += 3;
      continue;
    }
    if (in.compare(i, 2, "${") != 0) {
      *out += in[i++];
      continue;
    }
    size_t close = in.find('}', i + 2);
    if (close == std::string_view::npos) {
      *error = "unterminated ${ in the value; expected ${NAME} (write $${ for a literal ${)";
      return false;
    }
    std::string name(in.substr(i + 2, close - i - 2));
    static const std::regex kName("[A-Za-z_][A-Za-z0-9_]*");
    if (!std::regex_match(name, kName)) {
      // Not quoted: the text may be part of a secret.
      *error =
          "a ${...} with an invalid variable name; expected ${NAME} with NAME made of letters, "
          "digits and _ (write $${ for a literal ${)";
      return false;
    }
    std::optional<std::string> value = env(name);
    if (!value) {
      *error = "environment variable " + name + " is not set";
      return false;
    }
    *out += *value;
    i = close + 1;
  }
  return true;
}

bool ReadSmallFile(const std::string& path, std::string* out, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot read " + Quote(path) + ": " + ErrnoText(errno);
    return false;
  }
  out->clear();
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = "cannot read " + Quote(path) + ": " + ErrnoText(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buffer, static_cast<size_t>(n));
    if (out->size() > kMaxCredentialFileBytes) {
      *error = "cannot read " + Quote(path) + ": larger than 64 KiB; expected a small file";
      ::close(fd);
      return false;
    }
  }
  ::close(fd);
  return true;
}

bool CheckReadable(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot read " + Quote(path) + ": " + ErrnoText(errno);
    return false;
  }
  char byte;
  ssize_t n = ::read(fd, &byte, 1);
  int read_errno = errno;
  ::close(fd);
  if (n < 0) {
    *error = "cannot read " + Quote(path) + ": " + ErrnoText(read_errno);
    return false;
  }
  return true;
}

std::string ExpandPath(std::string_view path, const std::string& base_dir, const EnvLookup& env) {
  std::string p(path);
  if (p.rfind("~/", 0) == 0) {
    if (auto home = env("HOME")) p = *home + p.substr(1);
  }
  std::filesystem::path fs_path(p);
  if (fs_path.is_relative()) fs_path = std::filesystem::path(base_dir) / fs_path;
  return fs_path.lexically_normal().string();
}

bool CleanApiKey(std::string raw, Secret* out, std::string* error) {
  while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.pop_back();
  size_t start = 0;
  while (start < raw.size() && std::isspace(static_cast<unsigned char>(raw[start]))) ++start;
  raw.erase(0, start);
  if (raw.empty()) {
    *error = "the API key is empty";
    return false;
  }
  for (char c : raw) {
    if (!std::isgraph(static_cast<unsigned char>(c))) {
      *error = "the API key contains whitespace or control characters; expected one line";
      return false;
    }
  }
  *out = Secret(std::move(raw));
  return true;
}

bool ParseZuliprc(std::string_view text, Zuliprc* out, std::string* error) {
  std::string section;
  bool saw_api = false;
  std::set<std::string> seen;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    std::string where = "line " + std::to_string(line_number) + ": ";
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string_view line = raw;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) {
      line.remove_prefix(1);
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      if (end == text.size()) break;
      continue;
    }
    if (line.size() != raw.size() && std::isspace(static_cast<unsigned char>(raw[0])) &&
        section == "api") {
      *error = where + "indented continuation lines are not supported; expected name = value";
      return false;
    }
    if (line.front() == '[') {
      if (line.back() != ']') {
        *error = where + "unterminated section header; expected [api]";
        return false;
      }
      section = std::string(line.substr(1, line.size() - 2));
      if (section == "api") {
        if (saw_api) {
          *error = where + "duplicate section [api]";
          return false;
        }
        saw_api = true;
      }
      if (end == text.size()) break;
      continue;
    }
    size_t sep = line.find_first_of("=:");
    if (sep == std::string_view::npos) {
      *error = where + "expected name = value";
      return false;
    }
    if (section.empty()) {
      *error = where + "a setting before any section; expected it under [api]";
      return false;
    }
    if (section != "api") {
      if (end == text.size()) break;
      continue;
    }
    std::string name(line.substr(0, sep));
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    name = ToLower(name);
    std::string_view value = line.substr(sep + 1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
      value.remove_prefix(1);
    }
    if (std::find(kZuliprcKeys.begin(), kZuliprcKeys.end(), name) == kZuliprcKeys.end()) {
      *error = where + "unknown key " + Quote(name) + " in [api]; " + Suggest(name, kZuliprcKeys);
      return false;
    }
    if (!seen.insert(name).second) {
      *error = where + "duplicate key " + Quote(name) + " in [api]";
      return false;
    }
    std::string v(value);
    if (name == "key") {
      out->key = v;
    } else if (name == "email") {
      out->email = v;
    } else if (name == "site") {
      out->site = v;
    } else if (name == "client_cert") {
      out->client_cert = v;
    } else if (name == "client_cert_key") {
      out->client_cert_key = v;
    } else if (name == "cert_bundle") {
      out->cert_bundle = v;
    } else if (name == "insecure") {
      std::string lower = ToLower(v);
      if (lower != "true" && lower != "false") {
        *error = where + "insecure must be true or false";
        return false;
      }
      out->insecure = lower == "true";
    }
    if (end == text.size()) break;
  }
  if (!saw_api) {
    *error = "no [api] section; expected [api] with key, email and site";
    return false;
  }
  for (auto [field, name] : {std::pair{&out->key, "key"}, std::pair{&out->email, "email"},
                             std::pair{&out->site, "site"}}) {
    if (!*field || (*field)->empty()) {
      *error = std::string("[api] has no ") + name + "; expected key, email and site";
      return false;
    }
  }
  return true;
}

}  // namespace zb::config_internal
