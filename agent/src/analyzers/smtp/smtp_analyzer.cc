#include "analyzers/smtp/smtp_analyzer.h"

#include <algorithm>
#include <cctype>

#include "analyzers/text.h"

namespace senningen::agent {

namespace {

using detail::as_text;
using detail::iequals;
using detail::istarts_with;
using detail::trim;

constexpr std::size_t kMaxLine = 4096;            // RFC 5321 4.5.3.1.6 says 1000; be lenient
constexpr std::size_t kMaxHeaderBlock = 64 * 1024;
constexpr std::size_t kMaxRecipients = 200;
constexpr std::size_t kMaxMessageUrls = 64;  // URLs looked up per message

}  // namespace

std::vector<std::string> parse_address_list(std::string_view text) {
    std::vector<std::string> out;
    std::string plain;  // the element outside angle brackets, comments and spaces removed
    std::string angle;  // inside <...>
    bool has_angle = false;
    bool in_angle = false;
    bool in_quote = false;
    int comment = 0;

    auto finish = [&] {
        std::string addr;
        if (has_angle) {
            std::string_view a = trim(angle);
            // An obsolete source route "@relay1,@relay2:user@host" ends at the last ':'
            // outside quotes; a quoted local part may contain ':' itself.
            if (!a.empty() && a.front() == '@') {
                const std::size_t colon = a.find(':');
                if (colon != std::string_view::npos) a.remove_prefix(colon + 1);
            }
            addr = std::string(a);
        } else {
            addr = plain;
        }
        if (addr.find('@') != std::string::npos && addr.front() != '@' && addr.back() != '@' &&
            out.size() < kMaxRecipients) {
            out.push_back(std::move(addr));
        }
        plain.clear();
        angle.clear();
        has_angle = false;
    };

    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (comment > 0) {
            if (c == '\\') {
                ++i;
            } else if (c == '(') {
                ++comment;
            } else if (c == ')') {
                --comment;
            }
            continue;
        }
        std::string& target = in_angle ? angle : plain;
        if (in_quote) {
            target.push_back(c);
            if (c == '\\' && i + 1 < text.size()) {
                target.push_back(text[++i]);
            } else if (c == '"') {
                in_quote = false;
            }
            continue;
        }
        switch (c) {
            case '"':
                in_quote = true;
                target.push_back(c);
                break;
            case '(': comment = 1; break;
            case '<':
                if (!in_angle) {
                    in_angle = true;
                    has_angle = true;
                    angle.clear();
                }
                break;
            case '>':
                in_angle = false;
                break;
            case ',':
                if (in_angle) {
                    angle.push_back(c);
                } else {
                    finish();
                }
                break;
            case ':':
                if (in_angle) {
                    angle.push_back(c);
                } else {
                    // A group's display name ends here: its members follow.
                    plain.clear();
                    has_angle = false;
                }
                break;
            case ';':
                if (in_angle) {
                    angle.push_back(c);
                } else {
                    finish();
                }
                break;
            case ' ':
            case '\t':
            case '\r':
            case '\n':
                // Whitespace between a display name's words is not part of an address; inside
                // an addr-spec it is only ever folding.
                break;
            default: target.push_back(c); break;
        }
    }
    finish();
    return out;
}

std::string smtp_path_address(std::string_view argument) {
    argument = trim(argument);
    if (!argument.empty() && argument.front() == '<') {
        const std::size_t close = argument.find('>');
        std::string_view inside =
            argument.substr(1, close == std::string_view::npos ? std::string_view::npos
                                                               : close - 1);
        if (!inside.empty() && inside.front() == '@') {
            const std::size_t colon = inside.find(':');
            if (colon != std::string_view::npos) inside.remove_prefix(colon + 1);
        }
        return std::string(trim(inside));
    }
    // Without brackets (a common client error): up to the first space.
    return std::string(argument.substr(0, argument.find(' ')));
}

namespace {

struct Mail {
    std::string mail_from;
    std::vector<std::string> rcpt_to;
    std::vector<std::string> from, to, cc, reply_to;
    std::string subject;
    std::string message_id;
    std::string date;
    std::vector<std::string> path;  // addresses of the Received headers, as Zeek's smtp.log path
    std::string user_agent;         // User-Agent or X-Mailer
    std::string x_originating_ip;
    std::size_t urls = 0;  // URLs seen in the message's text
    bool has_data = false;
};

class SmtpAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) override {
        Direction& d = dirs_[ctx.direction & 1];
        if (stopped_) return;
        while (!bytes.empty() && !stopped_) {
            const auto nl = std::find(bytes.begin(), bytes.end(), std::uint8_t{'\n'});
            const std::size_t n = static_cast<std::size_t>(nl - bytes.begin());
            if (nl == bytes.end()) {
                append_partial(ctx, d, bytes);
                return;
            }
            std::string_view line;
            if (d.line.empty() && !d.overlong) {
                line = as_text(bytes.first(n));  // the whole line in place
                const std::size_t limit = in_data_ && in_headers_ ? kMaxHeaderBlock : kMaxLine;
                if (line.size() > limit && (!in_data_ || in_headers_)) {
                    ctx.host.weird("smtp_line_too_long", "SMTP line over its limit");
                    d.overlong = true;
                }
            } else {
                append_partial(ctx, d, bytes.first(n));
                line = d.line;
            }
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (!d.overlong) {
                if (ctx.direction == 0) {
                    client_line(ctx, line);
                } else {
                    server_line(ctx, line);
                }
            }
            d.line.clear();
            d.overlong = false;
            bytes = bytes.subspan(n + 1);
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        ctx.host.weird("smtp_gap", "hole in an SMTP stream; the rest is not parsed");
        stopped_ = true;
    }

    void end(const AnalyzerContext& ctx) override {
        if (in_data_) ctx.host.weird("smtp_data_truncated", "connection ends inside DATA");
        finish_mail(ctx);
    }

private:
    struct Direction {
        std::string line;
        bool overlong = false;
    };

    void append_partial(const AnalyzerContext& ctx, Direction& d,
                        std::span<const std::uint8_t> bytes) {
        if (d.overlong) return;
        const std::size_t limit = in_data_ && in_headers_ ? kMaxHeaderBlock : kMaxLine;
        if (d.line.size() + bytes.size() > limit) {
            // Body lines may be long (base64 without breaks); only commands and headers count.
            if (!in_data_ || in_headers_) {
                ctx.host.weird("smtp_line_too_long", "SMTP line over its limit");
            }
            d.overlong = true;
            d.line.clear();
            return;
        }
        d.line.append(as_text(bytes));
    }

    void client_line(const AnalyzerContext& ctx, std::string_view line) {
        if (in_data_) {
            data_line(ctx, line);
            return;
        }
        const std::size_t sp = line.find(' ');
        const std::string_view verb = line.substr(0, sp);
        const std::string_view arg = sp == std::string_view::npos ? "" : line.substr(sp + 1);
        if (iequals(verb, "HELO") || iequals(verb, "EHLO")) {
            helo_ = std::string(trim(arg));
        } else if (iequals(verb, "MAIL") && istarts_with(arg, "FROM:")) {
            finish_mail(ctx);
            mail_.mail_from = smtp_path_address(arg.substr(5));
            in_mail_ = true;
            if (!mail_.mail_from.empty()) {
                ctx.host.observe(IntelType::kEmail, mail_.mail_from, "SMTP::IN_MAIL_FROM");
            }
        } else if (iequals(verb, "RCPT") && istarts_with(arg, "TO:")) {
            std::string rcpt = smtp_path_address(arg.substr(3));
            if (!rcpt.empty()) {
                ctx.host.observe(IntelType::kEmail, rcpt, "SMTP::IN_RCPT_TO");
                if (mail_.rcpt_to.size() < kMaxRecipients) mail_.rcpt_to.push_back(std::move(rcpt));
            }
            in_mail_ = true;
        } else if (iequals(verb, "DATA")) {
            in_data_ = true;
            in_headers_ = true;
            mail_.has_data = true;
            header_.clear();
        } else if (iequals(verb, "RSET")) {
            finish_mail(ctx);
        } else if (iequals(verb, "STARTTLS")) {
            starttls_ = true;
        } else if (iequals(verb, "BDAT")) {
            // CHUNKING carries the message as counted bytes, not lines: not parsed.
            ctx.host.weird("smtp_bdat_not_parsed", "BDAT message content is not parsed");
            stopped_ = true;
        }
    }

    void server_line(const AnalyzerContext& ctx, std::string_view line) {
        if (line.size() < 3) return;
        const std::string_view code = line.substr(0, 3);
        if (code == "220" && starttls_) {
            stopped_ = true;  // TLS from here on
            finish_mail(ctx);
        }
        if ((code.front() == '4' || code.front() == '5') && in_data_ && in_headers_ &&
            header_.empty()) {
            in_data_ = false;  // DATA refused: no message follows
        }
    }

    void data_line(const AnalyzerContext& ctx, std::string_view line) {
        if (line == ".") {
            if (in_headers_) end_header(ctx);
            in_data_ = false;
            finish_mail(ctx);
            return;
        }
        if (!in_headers_) {
            body_urls(ctx, line);
            return;
        }
        if (line.empty()) {
            end_header(ctx);
            return;
        }
        if (line.front() == '.') line.remove_prefix(1);  // dot-stuffing
        if ((line.front() == ' ' || line.front() == '\t') && !header_.empty()) {
            header_.back().second += ' ';
            header_.back().second += trim(line);
            return;
        }
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            ctx.host.weird("smtp_bad_header_line", line.substr(0, 60));
            return;
        }
        if (header_.size() < 256) {
            header_.emplace_back(std::string(trim(line.substr(0, colon))),
                                 std::string(trim(line.substr(colon + 1))));
        }
    }

    void end_header(const AnalyzerContext& ctx) {
        in_headers_ = false;
        for (const auto& [name, value] : header_) {
            if (iequals(name, "from")) {
                add_addresses(ctx, value, mail_.from, "SMTP::IN_FROM");
            } else if (iequals(name, "to")) {
                add_addresses(ctx, value, mail_.to, "SMTP::IN_TO");
            } else if (iequals(name, "cc")) {
                add_addresses(ctx, value, mail_.cc, "SMTP::IN_CC");
            } else if (iequals(name, "reply-to")) {
                add_addresses(ctx, value, mail_.reply_to, "SMTP::IN_REPLY_TO");
            } else if (iequals(name, "subject")) {
                mail_.subject = value;
            } else if (iequals(name, "message-id")) {
                mail_.message_id = value;
            } else if (iequals(name, "date")) {
                mail_.date = value;
            } else if (iequals(name, "received")) {
                received(ctx, value);
            } else if (iequals(name, "x-originating-ip")) {
                // "[203.0.113.7]", as Hotmail and Exchange write it.
                std::string_view ip = trim(value);
                if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
                    ip = ip.substr(1, ip.size() - 2);
                }
                if (auto canonical = canonical_addr(ip)) {
                    ctx.host.observe(IntelType::kAddr, *canonical,
                                     "SMTP::IN_X_ORIGINATING_IP_HEADER");
                    mail_.x_originating_ip = std::move(*canonical);
                }
            } else if (iequals(name, "user-agent") || iequals(name, "x-mailer")) {
                mail_.user_agent = value;
                ctx.host.observe(IntelType::kSoftware, value, "SMTP::IN_HEADER");
            }
        }
        header_.clear();
    }

    // A Received header's bracketed addresses ("from mx (mx.example [203.0.113.66])", and
    // "[IPv6:2001:db8::1]"): the message's path, each looked up as Zeek's smtp.zeek does.
    void received(const AnalyzerContext& ctx, std::string_view value) {
        for (std::size_t open = value.find('['); open != std::string_view::npos;
             open = value.find('[', open + 1)) {
            const std::size_t close = value.find(']', open);
            if (close == std::string_view::npos) break;
            std::string_view inside = value.substr(open + 1, close - open - 1);
            if (istarts_with(inside, "ipv6:")) inside.remove_prefix(5);
            auto ip = canonical_addr(inside);
            if (!ip || mail_.path.size() >= kMaxRecipients ||
                std::find(mail_.path.begin(), mail_.path.end(), *ip) != mail_.path.end()) {
                continue;
            }
            ctx.host.observe(IntelType::kAddr, *ip, "SMTP::IN_RECEIVED_HEADER");
            mail_.path.push_back(std::move(*ip));
        }
    }

    // URLs in the message's text (http, https, ftp), each looked up at SMTP::IN_MESSAGE as
    // Zeek's smtp-url-extraction.zeek does; at most kMaxMessageUrls a message. Encoded bodies
    // (base64, quoted-printable) are not decoded for this.
    void body_urls(const AnalyzerContext& ctx, std::string_view line) {
        if (line.size() < 10 || mail_.urls >= kMaxMessageUrls) return;
        for (std::size_t at = line.find("://"); at != std::string_view::npos;
             at = line.find("://", at + 3)) {
            std::size_t scheme = at;
            while (scheme > 0 && std::isalpha(static_cast<unsigned char>(line[scheme - 1]))) {
                --scheme;
            }
            const std::string_view name = line.substr(scheme, at - scheme);
            if (!iequals(name, "http") && !iequals(name, "https") && !iequals(name, "ftp")) {
                continue;
            }
            std::size_t end = at + 3;
            while (end < line.size() && static_cast<unsigned char>(line[end]) > ' ' &&
                   std::string_view("\"'<>()[]{}").find(line[end]) == std::string_view::npos) {
                ++end;
            }
            std::string_view url = line.substr(at + 3, end - at - 3);
            while (!url.empty() && (url.back() == '.' || url.back() == ',')) url.remove_suffix(1);
            if (url.empty()) continue;
            ctx.host.observe(IntelType::kUrl, url, "SMTP::IN_MESSAGE");
            if (++mail_.urls >= kMaxMessageUrls) return;
        }
    }

    static void add_addresses(const AnalyzerContext& ctx, std::string_view value,
                              std::vector<std::string>& into, std::string_view where) {
        for (auto& addr : parse_address_list(value)) {
            ctx.host.observe(IntelType::kEmail, addr, where);
            if (into.size() < kMaxRecipients) into.push_back(std::move(addr));
        }
    }

    void finish_mail(const AnalyzerContext& ctx) {
        if (!in_mail_ && !mail_.has_data) return;
        RecordFields r;
        r.set("trans_depth", ++depth_);
        if (!helo_.empty()) r.set("helo", helo_);
        r.set("mail_from", mail_.mail_from);
        r.set("rcpt_to", mail_.rcpt_to);
        if (mail_.has_data) {
            r.set("from", mail_.from);
            r.set("to", mail_.to);
            r.set("cc", mail_.cc);
            if (!mail_.reply_to.empty()) r.set("reply_to", mail_.reply_to);
            if (!mail_.subject.empty()) r.set("subject", mail_.subject);
            if (!mail_.message_id.empty()) r.set("msg_id", mail_.message_id);
            if (!mail_.date.empty()) r.set("date", mail_.date);
            if (!mail_.path.empty()) r.set("path", mail_.path);
            if (!mail_.user_agent.empty()) r.set("user_agent", mail_.user_agent);
            if (!mail_.x_originating_ip.empty()) r.set("x_originating_ip", mail_.x_originating_ip);
        }
        ctx.host.record("smtp", r);
        mail_ = Mail{};
        in_mail_ = false;
    }

    Direction dirs_[2];
    std::string helo_;
    Mail mail_;
    std::vector<std::pair<std::string, std::string>> header_;
    int depth_ = 0;
    bool in_mail_ = false;
    bool in_data_ = false;
    bool in_headers_ = false;
    bool starttls_ = false;
    bool stopped_ = false;
};

}  // namespace

bool smtp_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t /*src_port*/,
                 std::uint16_t /*dst_port*/) {
    const std::string_view text = as_text(first.first(std::min<std::size_t>(first.size(), 512)));
    if (direction == 0) {
        return (istarts_with(text, "EHLO ") || istarts_with(text, "HELO ")) &&
               text.find('\n') != std::string_view::npos;
    }
    // A server greeting; "220" alone is also FTP's, so the banner must say SMTP.
    if (!text.starts_with("220 ") && !text.starts_with("220-")) return false;
    const std::string banner = detail::lower(text.substr(0, text.find('\n')));
    return banner.find("smtp") != std::string::npos;
}

std::unique_ptr<Analyzer> make_smtp_analyzer() { return std::make_unique<SmtpAnalyzer>(); }

}  // namespace senningen::agent
