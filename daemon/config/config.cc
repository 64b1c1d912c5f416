// LoadConfig: reads the file, then visits the top-level keys in a fixed order and hands each
// section to its reader (account_section, kafka_section, daemon_section), which report every
// problem with its file position into one Diagnostics instead of stopping at the first one, so
// that one --check-config run shows an operator all of them. yaml-cpp's exceptions stop here.
#include "daemon/config/config.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "daemon/config/account_section.h"
#include "daemon/config/daemon_section.h"
#include "daemon/config/diagnostics.h"
#include "daemon/config/kafka_section.h"

namespace zb {

std::ostream& operator<<(std::ostream& os, const Secret&) { return os << kRedacted; }

namespace {

using config_internal::Diagnostics;
using config_internal::Entry;
using config_internal::Fields;
using config_internal::Find;
using config_internal::LoadContext;
using config_internal::ReadAccountsSection;
using config_internal::ReadDeadLetterSection;
using config_internal::ReadHttpSection;
using config_internal::ReadKafkaSection;
using config_internal::ReadLogSection;
using config_internal::ReadMap;
using config_internal::ReadMetricsSection;
using config_internal::ReadRetrySection;
using config_internal::ReadStateDir;

class Loader {
 public:
  Loader(std::string path, const EnvLookup& env) : path_(std::move(path)), diag_(path_), env_(env) {
    // Absolute, so that every path in the Config is too, whatever the daemon's cwd later.
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    if (dir.empty()) dir = ".";
    base_dir_ = std::filesystem::absolute(dir, ec).lexically_normal().string();
    if (ec) base_dir_ = dir.string();
  }

  StatusOr<Config> Load(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      diag_.Add(e.mark, "", "YAML syntax error: " + e.msg);
      return Status::InvalidArgument(diag_.Joined());
    }
    config_.path = path_;
    try {
      LoadRoot(root);
    } catch (const YAML::Exception& e) {
      diag_.Add(e.mark, "", std::string("unexpected YAML structure: ") + e.msg);
    }
    if (!diag_.empty()) return Status::InvalidArgument(diag_.Joined());
    return std::move(config_);
  }

 private:
  void LoadRoot(const YAML::Node& root) {
    Entry top{root, "", YAML::Mark()};
    if (!root.IsDefined() || root.IsNull()) {
      diag_.Add(YAML::Mark::null_mark(), "",
                "the file is empty; expected a mapping with kafka and accounts");
      return;
    }
    Fields fields = ReadMap(
        diag_, top,
        {"kafka", "state_dir", "http", "log", "metrics", "retry", "dead_letter", "accounts"});
    if (!root.IsMap()) return;

    const LoadContext ctx{diag_, env_, base_dir_};
    // Accounts first: the topic checks expand templates with every account name.
    if (const Entry* e = Find(fields, "accounts")) {
      ReadAccountsSection(ctx, *e, &config_.accounts);
    } else {
      diag_.Add(root.Mark(), "accounts", "missing; expected a list of at least one account");
    }
    if (const Entry* e = Find(fields, "kafka")) {
      ReadKafkaSection(ctx, *e, config_.accounts, &config_.kafka);
    } else {
      diag_.Add(root.Mark(), "kafka", "missing; expected a mapping with at least brokers");
    }
    ReadStateDir(ctx, Find(fields, "state_dir"), root.Mark(), &config_.state_dir);
    if (const Entry* e = Find(fields, "http")) ReadHttpSection(ctx, *e, &config_.http);
    if (const Entry* e = Find(fields, "log")) ReadLogSection(ctx, *e, &config_.log);
    if (const Entry* e = Find(fields, "metrics")) ReadMetricsSection(ctx, *e, &config_.metrics);
    if (const Entry* e = Find(fields, "retry")) ReadRetrySection(ctx, *e, &config_.retry);
    if (const Entry* e = Find(fields, "dead_letter")) {
      ReadDeadLetterSection(ctx, *e, &config_.dead_letter);
    }
  }

  std::string path_;
  std::string base_dir_;
  Diagnostics diag_;
  const EnvLookup& env_;
  Config config_;
};

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  };
}

StatusOr<Config> LoadConfig(const std::string& path, const EnvLookup& env) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::FromErrno(path, EISDIR);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno(path, errno);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::FromErrno(path, errno);
  Loader loader(path, env);
  return loader.Load(buffer.str());
}

StatusOr<Config> LoadConfig(const std::string& path) { return LoadConfig(path, ProcessEnv()); }

std::string KafkaConfig::TopicFor(std::string_view type, std::string_view account) const {
  auto it = topics.find(type);
  return ExpandTopic(it == topics.end() ? topic_template : it->second, type, account);
}

KeyChoice KafkaConfig::KeyFor(std::string_view type) const {
  auto it = keys.find(type);
  return it == keys.end() ? default_key : it->second;
}

}  // namespace zb
