// HTTP/1.x: requests and responses parsed incrementally in each direction (pipelined and
// keep-alive connections: responses are paired with requests in order), bodies framed by
// Content-Length, chunked transfer coding, or the end of the connection. One "http" record
// per transaction. Bodies are files for the host (hashes, intel, YARA, extraction), named by
// Content-Disposition; a multipart/form-data request body gives one file per part with a file
// name. Intel: the Host header at HTTP::IN_HOST_HEADER (an address as Intel::ADDR, a name as
// Intel::DOMAIN), the URL (host[:port]/uri, as Zeek's HTTP::build_url) at HTTP::IN_URL, the
// User-Agent as Intel::SOFTWARE at HTTP::IN_USER_AGENT_HEADER, the Referer as Intel::URL at
// HTTP::IN_REFERRER_HEADER and X-Forwarded-For addresses at HTTP::IN_X_FORWARDED_FOR_HEADER.
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool http_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                 std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_http_analyzer();

}  // namespace senningen::agent
