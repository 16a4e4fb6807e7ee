// Reading a JSON object from outside (an API body, a config file) with
// errors that name the field: "strategy.batch_size must be a whole number
// from 1 to 100000". Unknown fields are refused, so a typo is not silently
// ignored.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/base/result.hpp"

namespace drover::canon {

class Fields {
 public:
  // where: the object's path ("" for the top, "strategy" for a nested one).
  Fields(const nlohmann::json& object, std::string where);
  // Refuses a value that is not an object.
  static Result<Fields> of(const nlohmann::json& value, const std::string& where);

  // Refuses any field not in known.
  Status only(std::initializer_list<std::string_view> known) const;
  bool has(const std::string& name) const;

  // Each refuses a present value of the wrong type or range; required ones
  // refuse absence too. Strings are bounded to max_size bytes.
  Result<std::string> str(const std::string& name, std::size_t max_size = 256) const;
  Result<std::optional<std::string>> opt_str(const std::string& name,
                                             std::size_t max_size = 256) const;
  Result<std::optional<std::int64_t>> opt_int(const std::string& name, std::int64_t min,
                                              std::int64_t max) const;
  Result<std::optional<double>> opt_num(const std::string& name, double min, double max) const;
  Result<std::optional<bool>> opt_bool(const std::string& name) const;
  // An array of strings, each at most max_size bytes, at most max_items.
  Result<std::vector<std::string>> str_list(const std::string& name, std::size_t max_items,
                                            std::size_t max_size = 256) const;
  // A nested object, if present.
  Result<std::optional<Fields>> opt_object(const std::string& name) const;
  const nlohmann::json* raw(const std::string& name) const;

  std::string path(const std::string& name) const;
  const nlohmann::json& value() const { return *object_; }

 private:
  const nlohmann::json* object_;
  std::string where_;
};

}  // namespace drover::canon
