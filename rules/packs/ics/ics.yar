// YARA side of the ICS pack; its policy.conf (loaded with this directory) holds the protocol
// rules. These catch the same intent where no analyzer parses the stream (an S7 tunnel, a
// gap that stopped the analyzer, a capture that starts mid-stream).
rule ICS_S7_PI_Service_P_PROGRAM
{
    meta:
        description = "S7comm PLC start/stop (PI service P_PROGRAM) in a TPKT/COTP stream"
        category = "ICS: PLC control"
        severity = "high"
    strings:
        // TPKT version 3, then COTP data, S7 protocol id 0x32, job; P_PROGRAM later in the PDU
        $s7_job = { 03 00 ?? ?? 02 F0 80 32 01 }
        $pi = "P_PROGRAM"
    condition:
        $s7_job and $pi
}
