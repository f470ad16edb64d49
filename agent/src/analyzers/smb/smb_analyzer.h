// SMB2/3 over TCP (direct hosting, a 4-byte length before each message): the names of files
// opened (CREATE), and the reads and writes on them, paired request to response by message
// id and to the file by its FileId. Compounded messages (NextCommand) are followed. File
// names are matched as Intel::FILE_NAME at SMB::IN_FILE_NAME. Sequential reads and writes are
// handed to the host as files (source "SMB": hashes, intel, YARA); a file whose reads or
// writes skip around is reported with the bytes it is missing. One "smb" record per open,
// read, write and close. Encrypted (transform header) and SMB1 messages are counted weirds.
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool smb_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_smb_analyzer();

}  // namespace senningen::agent
