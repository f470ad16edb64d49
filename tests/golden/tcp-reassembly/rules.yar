rule reassembly_golden_marker
{
    meta:
        description = "Golden test: a marker that two TCP segments share, sent out of order"
        severity = "high"
        category = "malware"
    strings:
        $marker = "REASSEMBLY-GOLDEN-MARKER"
    condition:
        $marker
}
