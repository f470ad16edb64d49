// SMTP (RFC 5321) and the message header (RFC 5322): the client's commands and the server's
// replies, line by line. MAIL FROM is matched as Intel::EMAIL at SMTP::IN_MAIL_FROM, each
// RCPT TO at SMTP::IN_RCPT_TO, and every address of the From, To and Cc headers at
// SMTP::IN_FROM, SMTP::IN_TO and SMTP::IN_CC, in any RFC 5322 form (display names, quoted
// strings, groups, comments, obsolete routes). One "smtp" record per mail transaction. After
// STARTTLS or a hole the rest of the connection is not parsed.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool smtp_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                 std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_smtp_analyzer();

// The addr-specs ("user@example.com") of an RFC 5322 address-list: mailboxes with or without
// display names, quoted local parts and display names, groups ("team: a@x, b@y;"), comments
// anywhere, folded whitespace. Unparseable pieces are left out.
std::vector<std::string> parse_address_list(std::string_view text);

// The address of a MAIL FROM / RCPT TO argument: "<a@b> SIZE=10" -> "a@b"; "<>" -> "".
std::string smtp_path_address(std::string_view argument);

}  // namespace senningen::agent
