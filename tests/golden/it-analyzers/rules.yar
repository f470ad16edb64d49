// Markers the IT golden capture carries: one inside an HTTP body that is chunked so that the
// marker straddles a chunk boundary (only the reassembled file shows it whole), one in the
// data of an SMB write.
rule it_golden_chunked_marker {
    meta:
        severity = 2
        category = "Test marker in a file from traffic"
    strings:
        $m = "SENNINGEN-IT-TEST-MARKER"
    condition:
        $m
}

rule it_golden_smb_payload {
    meta:
        severity = "high"
        category = "Test payload written over SMB"
    strings:
        $mz = { 4D 5A }
        $m = "SENNINGEN-IT-SMB-PAYLOAD"
    condition:
        $mz at 0 and $m
}
