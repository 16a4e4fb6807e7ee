#include <utility>  // before Asio: Boost 1.74 with GCC 12 needs std::exchange declared

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>

#include "core/http/http.hpp"

namespace drover::http {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

Result<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size()) {
        return make_error(Errc::invalid_argument, "truncated %-escape");
      }
      int hi = hex_digit(text[i + 1]), lo = hex_digit(text[i + 2]);
      if (hi < 0 || lo < 0) return make_error(Errc::invalid_argument, "bad %-escape");
      out += static_cast<char>((hi << 4) | lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::string percent_encode(std::string_view bytes) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq));
    auto value =
        percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (key.ok() && value.ok()) out.emplace_back(std::move(*key), std::move(*value));
  }
  return out;
}

Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    return make_error(Errc::invalid_argument, "listen address '" + text + "' must be HOST:PORT");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return make_error(
        Errc::invalid_argument,
        "listen address '" + text + "': an IPv6 address goes in brackets, [::1]:PORT");
  }
  if (host.find_first_of("[]") != std::string::npos) {
    return make_error(Errc::invalid_argument, "listen address '" + text + "' must be HOST:PORT");
  }
  unsigned long port = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) {
      return make_error(Errc::invalid_argument, "listen address '" + text + "' has a bad port");
    }
    port = port * 10 + static_cast<unsigned long>(c - '0');
  }
  if (port > 65535 || host.empty()) {
    return make_error(Errc::invalid_argument, "listen address '" + text + "' must be HOST:PORT");
  }
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

Result<Url> parse_url(std::string_view text) {
  auto bad = [&](const char* why) {
    return make_error(Errc::invalid_argument,
                      "URL '" + std::string(text.substr(0, 200)) + "': " + why);
  };
  Url url;
  std::string_view rest;
  if (text.substr(0, 7) == "http://") {
    rest = text.substr(7);
  } else if (text.substr(0, 8) == "https://") {
    rest = text.substr(8);
    url.tls = true;
    url.port = 443;
  } else {
    return bad("must start with http:// or https://");
  }
  std::size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  url.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!url.target.empty() && url.target[0] == '?') url.target = "/" + url.target;
  std::size_t colon = authority.rfind(':');
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed IPv6 address");
    url.host = std::string(authority.substr(1, close - 1));
    colon = authority.size() > close + 1 && authority[close + 1] == ':' ? close + 1
                                                                        : std::string_view::npos;
  } else {
    url.host = std::string(authority.substr(0, colon));
  }
  if (url.host.empty()) return bad("no host");
  if (colon != std::string_view::npos) {
    std::string_view port = authority.substr(colon + 1);
    unsigned long value = 0;
    if (port.empty() || port.size() > 5) return bad("bad port");
    for (char c : port) {
      if (c < '0' || c > '9') return bad("bad port");
      value = value * 10 + static_cast<unsigned long>(c - '0');
    }
    if (value == 0 || value > 65535) return bad("bad port");
    url.port = static_cast<std::uint16_t>(value);
  }
  return url;
}

namespace {

// Connect (and for TLS, handshake), write, read: all asynchronous, so the one
// deadline on the lowest layer covers every step.
template <class Stream, class Handshake>
beast::error_code exchange(asio::io_context& io, Stream& stream,
                           const tcp::resolver::results_type& endpoints, Handshake handshake,
                           bhttp::request<bhttp::string_body>& req,
                           bhttp::response_parser<bhttp::string_body>& parser) {
  beast::flat_buffer buffer;
  beast::error_code result;
  beast::get_lowest_layer(stream).async_connect(
      endpoints, [&](beast::error_code cec, const tcp::endpoint&) {
        if (cec) {
          result = cec;
          return;
        }
        handshake([&](beast::error_code hec) {
          if (hec) {
            result = hec;
            return;
          }
          bhttp::async_write(stream, req, [&](beast::error_code wec, std::size_t) {
            if (wec) {
              result = wec;
              return;
            }
            bhttp::async_read(stream, buffer, parser,
                              [&](beast::error_code rec, std::size_t) { result = rec; });
          });
        });
      });
  io.run();
  return result;
}

}  // namespace

Result<Response> request(std::string_view method, std::string_view url_text, std::string_view body,
                         std::chrono::milliseconds timeout, std::string_view content_type,
                         std::uint64_t max_body_bytes) {
  ClientOptions options;
  options.timeout = timeout;
  options.content_type = std::string(content_type);
  options.max_body_bytes = max_body_bytes;
  return request(method, url_text, body, options);
}

Result<Response> request(std::string_view method, std::string_view url_text, std::string_view body,
                         const ClientOptions& options) {
  DROVER_ASSIGN(Url url, parse_url(url_text));
  const std::string where = std::string(method) + " " + std::string(url_text.substr(0, 200));
  asio::io_context io;
  beast::error_code ec;
  tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) return make_error(Errc::io, where + ": resolve: " + ec.message());

  bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(std::string(method)), url.target,
                                         11);
  req.set(bhttp::field::host, url.host);
  req.set(bhttp::field::user_agent, "drover");
  for (const auto& [k, v] : options.headers) req.set(k, v);
  if (!body.empty()) {
    req.set(bhttp::field::content_type, options.content_type);
    req.body() = std::string(body);
  }
  req.prepare_payload();
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options.max_body_bytes);

  beast::error_code result;
  if (url.tls) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_verify_mode(asio::ssl::verify_peer);
    if (options.ca_file.empty()) {
      ctx.set_default_verify_paths(ec);
    } else {
      ctx.load_verify_file(options.ca_file, ec);
    }
    if (ec) return make_error(Errc::io, where + ": CA certificates: " + ec.message());
    beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
    if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
      return make_error(Errc::io, where + ": cannot set the TLS server name");
    }
    stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
    beast::get_lowest_layer(stream).expires_after(options.timeout);
    result = exchange(
        io, stream, endpoints,
        [&](auto done) { stream.async_handshake(asio::ssl::stream_base::client, done); }, req,
        parser);
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
  } else {
    beast::tcp_stream stream(io);
    stream.expires_after(options.timeout);
    result = exchange(
        io, stream, endpoints, [](auto done) { done(beast::error_code{}); }, req, parser);
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  }
  if (result == beast::error::timeout) {
    return make_error(
        Errc::io, where + ": no answer within " + std::to_string(options.timeout.count()) + " ms");
  }
  if (result) return make_error(Errc::io, where + ": " + result.message());
  Response r;
  auto& res = parser.get();
  r.status = static_cast<int>(res.result_int());
  r.content_type = std::string(res[bhttp::field::content_type]);
  for (const auto& field : res) {
    r.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  r.body = std::move(res.body());
  return r;
}

}  // namespace drover::http
