#include "core/canon/json_fields.hpp"
#include "core/base/text.hpp"

#include <algorithm>
#include <cmath>

namespace drover::canon {

using nlohmann::json;

Fields::Fields(const json& object, std::string where, Nulls nulls)
    : object_(&object), where_(std::move(where)), nulls_(nulls) {}

Result<Fields> Fields::of(const json& value, const std::string& where, Nulls nulls) {
  if (!value.is_object()) {
    return make_error(Errc::invalid_argument,
                      (where.empty() ? std::string("the body") : where) + " must be a JSON object");
  }
  return Fields(value, where, nulls);
}

std::string Fields::path(const std::string& name) const {
  return where_.empty() ? name : where_ + "." + name;
}

Error Fields::missing(const std::string& name) const {
  return make_error(Errc::invalid_argument, path(name) + " is required");
}

Status Fields::only(std::initializer_list<std::string_view> known) const {
  for (const auto& [k, v] : object_->items()) {
    bool ok = false;
    for (auto n : known) ok = ok || n == k;
    if (!ok) {
      return make_error(Errc::invalid_argument, "unknown field '" + path(clip_utf8(k, 64)) + "'");
    }
  }
  return Ok{};
}

Status Fields::require(std::initializer_list<std::string_view> names) const {
  for (auto n : names) {
    if (!has(std::string(n))) return missing(std::string(n));
  }
  return Ok{};
}

bool Fields::has(const std::string& name) const {
  return raw(name) != nullptr;
}

const json* Fields::raw(const std::string& name) const {
  auto it = object_->find(name);
  if (it == object_->end() || (nulls_ == Nulls::absent && it->is_null())) return nullptr;
  return &*it;
}

Result<std::optional<std::string>> Fields::opt_str(const std::string& name,
                                                   std::size_t max_size) const {
  const json* v = raw(name);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return make_error(Errc::invalid_argument, path(name) + " must be a string");
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > max_size) {
    return make_error(Errc::invalid_argument,
                      path(name) + " is longer than " + std::to_string(max_size) + " bytes");
  }
  return std::optional<std::string>(s);
}

Result<std::string> Fields::str(const std::string& name, std::size_t max_size, Empty empty) const {
  DROVER_ASSIGN(auto v, opt_str(name, max_size));
  if (!v || (v->empty() && empty == Empty::refused)) return missing(name);
  return std::move(*v);
}

Result<std::optional<std::int64_t>> Fields::opt_int(const std::string& name, std::int64_t min,
                                                    std::int64_t max) const {
  const json* v = raw(name);
  if (v == nullptr) return std::optional<std::int64_t>();
  auto range = [&] {
    return make_error(Errc::invalid_argument, path(name) + " must be a whole number from " +
                                                  std::to_string(min) + " to " +
                                                  std::to_string(max));
  };
  if (!v->is_number_integer()) return range();
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
    return range();
  }
  const auto n = v->get<std::int64_t>();
  if (n < min || n > max) return range();
  return std::optional<std::int64_t>(n);
}

Result<std::int64_t> Fields::integer(const std::string& name, std::int64_t min,
                                     std::int64_t max) const {
  DROVER_ASSIGN(auto v, opt_int(name, min, max));
  if (!v) return missing(name);
  return *v;
}

Result<std::uint64_t> Fields::u64(const std::string& name, std::uint64_t max) const {
  const json* v = raw(name);
  if (v == nullptr) return missing(name);
  // JSON has no signedness: a parsed non-negative integer is number_unsigned,
  // one built in code may be number_integer.
  const bool whole =
      v->is_number_unsigned() || (v->is_number_integer() && v->get<std::int64_t>() >= 0);
  if (!whole || v->get<std::uint64_t>() > max) {
    return make_error(Errc::invalid_argument,
                      path(name) + " must be a whole number from 0 to " + std::to_string(max));
  }
  return v->get<std::uint64_t>();
}

Result<std::optional<double>> Fields::opt_num(const std::string& name, double min,
                                              double max) const {
  const json* v = raw(name);
  if (v == nullptr) return std::optional<double>();
  const double n = v->is_number() ? v->get<double>() : NAN;
  if (!std::isfinite(n) || n < min || n > max) {
    if (min == std::numeric_limits<double>::lowest() && max == std::numeric_limits<double>::max()) {
      return make_error(Errc::invalid_argument, path(name) + " must be a finite number");
    }
    return make_error(Errc::invalid_argument, path(name) + " must be a number from " +
                                                  nlohmann::json(min).dump() + " to " +
                                                  nlohmann::json(max).dump());
  }
  return std::optional<double>(n);
}

Result<double> Fields::num(const std::string& name, double min, double max) const {
  DROVER_ASSIGN(auto v, opt_num(name, min, max));
  if (!v) return missing(name);
  return *v;
}

Result<std::optional<bool>> Fields::opt_bool(const std::string& name) const {
  const json* v = raw(name);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_boolean())
    return make_error(Errc::invalid_argument, path(name) + " must be true or false");
  return std::optional<bool>(v->get<bool>());
}

Result<bool> Fields::boolean(const std::string& name) const {
  DROVER_ASSIGN(auto v, opt_bool(name));
  if (!v) return missing(name);
  return *v;
}

Result<std::vector<std::string>> Fields::str_list(const std::string& name, std::size_t max_items,
                                                  std::size_t max_size, Empty empty) const {
  std::vector<std::string> out;
  const json* v = raw(name);
  if (v == nullptr) return out;
  if (!v->is_array()) return make_error(Errc::invalid_argument, path(name) + " must be an array");
  if (v->size() > max_items) {
    return make_error(Errc::invalid_argument,
                      path(name) + " has more than " + std::to_string(max_items) + " items");
  }
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    const std::string at = path(name) + "[" + std::to_string(i) + "]";
    if (!e.is_string()) {
      return make_error(
          Errc::invalid_argument,
          at + (empty == Empty::refused ? " must be a non-empty string" : " must be a string"));
    }
    const auto& s = e.get_ref<const std::string&>();
    if (s.empty() && empty == Empty::refused) {
      return make_error(Errc::invalid_argument, at + " must be a non-empty string");
    }
    if (s.size() > max_size) {
      return make_error(Errc::invalid_argument,
                        at + " is longer than " + std::to_string(max_size) + " bytes");
    }
    out.push_back(s);
  }
  return out;
}

Result<std::optional<Fields>> Fields::opt_object(const std::string& name) const {
  const json* v = raw(name);
  if (v == nullptr) return std::optional<Fields>();
  DROVER_ASSIGN(Fields f, of(*v, path(name), nulls_));
  return std::optional<Fields>(f);
}

Result<Fields> Fields::object(const std::string& name) const {
  DROVER_ASSIGN(auto v, opt_object(name));
  if (!v) return missing(name);
  return *v;
}

Result<std::vector<Fields>> Fields::objects(const std::string& name, std::size_t max_items) const {
  const json* v = raw(name);
  if (v == nullptr) return missing(name);
  if (!v->is_array()) {
    return make_error(Errc::invalid_argument, path(name) + " must be an array of objects");
  }
  if (v->size() > max_items) {
    return make_error(Errc::invalid_argument,
                      path(name) + " has more than " + std::to_string(max_items) + " items");
  }
  std::vector<Fields> out;
  out.reserve(v->size());
  for (std::size_t i = 0; i < v->size(); ++i) {
    DROVER_ASSIGN(Fields f, of((*v)[i], path(name) + "[" + std::to_string(i) + "]", nulls_));
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace drover::canon
