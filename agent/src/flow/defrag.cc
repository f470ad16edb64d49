// IP fragment reassembly (see defrag.h for the policy).
#include "senningen/agent/flow/defrag.h"

#include <algorithm>
#include <cstring>

namespace senningen::agent {
namespace {

constexpr std::size_t kMaxIpPacket = 65535;
constexpr std::size_t kIpv6Header = 40;

void put16(std::uint8_t* p, std::size_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

// Adds [BEGIN, END) to RANGES (sorted, non-overlapping, non-adjacent), merging what it touches.
void merge(std::vector<std::pair<std::uint32_t, std::uint32_t>>& ranges, std::uint32_t begin,
           std::uint32_t end) {
    std::pair<std::uint32_t, std::uint32_t> range{begin, end};
    std::vector<std::pair<std::uint32_t, std::uint32_t>> merged;
    merged.reserve(ranges.size() + 1);
    bool placed = false;
    for (const auto& r : ranges) {
        if (r.second < range.first) {
            merged.push_back(r);
        } else if (range.second < r.first) {
            if (!placed) {
                merged.push_back(range);
                placed = true;
            }
            merged.push_back(r);
        } else {
            range = {std::min(range.first, r.first), std::max(range.second, r.second)};
        }
    }
    if (!placed) merged.push_back(range);
    ranges = std::move(merged);
}

}  // namespace

std::span<const std::uint8_t> Defragmenter::add(const DecodedPacket& fragment,
                                                 std::int64_t ts_ns) {
    ++counters_.fragments;
    // Counted and taken all the same (as Zeek's -C); the reassembled header gets a new one.
    const bool bad_checksum =
        fragment.src.family == 4 && internet_fold(internet_sum(fragment.ip_header)) != 0xffff;
    if (bad_checksum) ++counters_.bad_checksums;
    expire(ts_ns);
    const Key key{fragment.src.family, fragment.ip_proto, fragment.frag_id, fragment.src,
                  fragment.dst};
    auto it = datagrams_.find(key);
    const std::uint32_t begin = fragment.frag_offset;
    const std::uint32_t end = begin + fragment.frag_len;
    // The payload an IP packet can carry: the total length field counts the IPv4 header, the
    // IPv6 payload length does not.
    const std::size_t max_payload = fragment.src.family == 4
                                        ? kMaxIpPacket - fragment.ip_header.size()
                                        : kMaxIpPacket;
    const bool cut = fragment.payload.size() < fragment.frag_len;  // snap length
    // A second "last fragment" that disagrees, data beyond the end the last one set, or a
    // last fragment that ends before data already held.
    const bool conflicting_end =
        it != datagrams_.end() &&
        ((it->second.total >= 0 &&
          (end > it->second.total || (!fragment.frag_more && end != it->second.total))) ||
         (!fragment.frag_more && end < it->second.data.size()));
    if (cut || end > max_payload || conflicting_end) {
        ++counters_.dropped;
        if (it != datagrams_.end()) drop(it);
        return {};
    }
    if (it == datagrams_.end()) {
        make_room(true, end, nullptr);
        it = datagrams_.emplace(key, Datagram{}).first;
        it->second.first_ts_ns = ts_ns;
        by_age_.emplace(ts_ns, key);
    } else if (end > it->second.data.size()) {
        make_room(false, end - it->second.data.size(), &key);
    }
    Datagram& d = it->second;
    ++d.fragments;
    if (bad_checksum) ++d.bad_checksums;
    if (!fragment.frag_more) d.total = end;
    if (begin == 0 && d.header.empty()) {
        d.header.assign(fragment.ip_header.begin(), fragment.ip_header.end());
    }
    if (end > d.data.size()) {
        held_ += end - d.data.size();
        d.data.resize(end);
    }
    // Bytes not held yet are copied; held ones stay (first copy wins) and are compared.
    const std::uint8_t* src = fragment.payload.data();
    bool differs = false;
    std::uint32_t at = begin;
    for (const auto& [have_begin, have_end] : d.have) {
        if (have_end <= at) continue;
        if (have_begin >= end) break;
        if (have_begin > at) {
            std::memcpy(d.data.data() + at, src + (at - begin), have_begin - at);
            at = have_begin;
        }
        const std::uint32_t stop = std::min(have_end, end);
        if (std::memcmp(d.data.data() + at, src + (at - begin), stop - at) != 0) differs = true;
        at = stop;
    }
    if (at < end) std::memcpy(d.data.data() + at, src + (at - begin), end - at);
    if (differs) {
        ++counters_.overlaps;
        ++d.differing;
    }
    if (begin < end) merge(d.have, begin, end);

    const bool complete = d.total >= 0 && !d.header.empty() && d.have.size() == 1 &&
                          d.have[0].first == 0 &&
                          d.have[0].second == static_cast<std::uint32_t>(d.total);
    if (!complete) return {};
    const std::size_t total = static_cast<std::size_t>(d.total);
    // Each fragment was checked against its own header; the datagram takes the first one's,
    // whose options may be longer.
    if (fragment.src.family == 4 && d.header.size() + total > kMaxIpPacket) {
        drop(it);
        return {};
    }
    out_.clear();
    if (fragment.src.family == 4) {
        out_.assign(d.header.begin(), d.header.end());
        put16(out_.data() + 2, out_.size() + total);
        put16(out_.data() + 6, 0);  // no flags, offset 0
        put16(out_.data() + 10, 0);
        put16(out_.data() + 10, ipv4_header_checksum(out_));
    } else {
        out_.assign(d.header.begin(), d.header.begin() + kIpv6Header);
        put16(out_.data() + 4, total);
        out_[6] = fragment.ip_proto;
    }
    out_.insert(out_.end(), d.data.begin(), d.data.begin() + static_cast<std::ptrdiff_t>(total));
    last_ = {std::get<2>(it->first), d.differing, d.bad_checksums};
    forget(it);
    ++counters_.datagrams;
    return out_;
}

void Defragmenter::flush() {
    while (!datagrams_.empty()) drop(datagrams_.begin());
}

void Defragmenter::drop(Datagrams::iterator it) {
    counters_.dropped += it->second.fragments;
    forget(it);
}

void Defragmenter::forget(Datagrams::iterator it) {
    held_ -= it->second.data.size();
    by_age_.erase({it->second.first_ts_ns, it->first});
    datagrams_.erase(it);
}

void Defragmenter::expire(std::int64_t ts_ns) {
    while (!by_age_.empty() && ts_ns - by_age_.begin()->first > kTimeoutNs) {
        drop(datagrams_.find(by_age_.begin()->second));
    }
}

void Defragmenter::make_room(bool new_slot, std::size_t bytes, const Key* keep) {
    auto oldest = by_age_.begin();
    while (oldest != by_age_.end() &&
           ((new_slot && datagrams_.size() >= kMaxDatagrams) || held_ + bytes > kMaxBytes)) {
        if (keep != nullptr && oldest->second == *keep) {
            ++oldest;
            continue;
        }
        const Key victim = oldest->second;
        ++oldest;  // drop() erases the entry this pointed at
        drop(datagrams_.find(victim));
    }
}

}  // namespace senningen::agent
