#include "daemon/config/topic_template.h"

#include <algorithm>
#include <cctype>

namespace zb {
namespace {

std::string PlaceholderList() {
  std::string out;
  for (std::string_view placeholder : kTopicPlaceholders) {
    if (!out.empty()) out += ", ";
    out += placeholder;
  }
  return out;
}

}  // namespace

void AppendTopic(std::string_view tmpl, std::string_view type, std::string_view account,
                 std::string& out) {
  size_t i = 0;
  while (i < tmpl.size()) {
    std::string_view rest = tmpl.substr(i);
    if (rest.starts_with(kTypePlaceholder)) {
      out += type;
      i += kTypePlaceholder.size();
    } else if (rest.starts_with(kAccountPlaceholder)) {
      out += account;
      i += kAccountPlaceholder.size();
    } else {
      out += tmpl[i++];
    }
  }
}

std::string ExpandTopic(std::string_view tmpl, std::string_view type, std::string_view account) {
  std::string out;
  out.reserve(tmpl.size() + type.size() + account.size());
  AppendTopic(tmpl, type, account, out);
  return out;
}

Status CheckTopicTemplatePlaceholders(std::string_view tmpl) {
  size_t i = 0;
  while ((i = tmpl.find_first_of("{}", i)) != std::string_view::npos) {
    if (tmpl[i] == '}') {
      return Status::InvalidArgument("a '}' without '{'; expected placeholders " +
                                     PlaceholderList());
    }
    size_t close = tmpl.find('}', i);
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("an unterminated '{'; expected placeholders " +
                                     PlaceholderList());
    }
    std::string_view placeholder = tmpl.substr(i, close - i + 1);
    if (std::find(kTopicPlaceholders.begin(), kTopicPlaceholders.end(), placeholder) ==
        kTopicPlaceholders.end()) {
      return Status::InvalidArgument("unknown placeholder " + std::string(placeholder) +
                                     "; expected " + PlaceholderList());
    }
    i = close + 1;
  }
  return Status::Ok();
}

Status CheckTopicName(std::string_view topic) {
  static constexpr char kRule[] =
      "not a valid Kafka topic name; expected 1 to 249 characters of a-z A-Z 0-9 . _ - "
      "(not . or ..)";
  if (topic.empty() || topic.size() > 249 || topic == "." || topic == "..") {
    return Status::InvalidArgument(kRule);
  }
  for (char c : topic) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return Status::InvalidArgument(kRule);
    }
  }
  return Status::Ok();
}

}  // namespace zb
