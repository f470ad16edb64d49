// The demo rule pack: what ./scripts/demo runs on tests/golden/demo/input.pcap.
// Metadata that Senningen reads: severity (1 most severe .. 4), category, description.

rule senningen_demo_implant_download
{
    meta:
        description = "An ELF file carrying the Senningen demo implant marker crossed the network"
        category = "Malware download"
        severity = 1
    strings:
        $marker = "SENNINGEN-DEMO-IMPLANT"
        $elf = { 7F 45 4C 46 02 01 01 }
    condition:
        $marker and $elf
}

rule senningen_demo_modbus_write_multiple
{
    meta:
        description = "A Modbus/TCP 'write multiple registers' request (function 16)"
        category = "ICS write"
        severity = 2
    strings:
        // MBAP protocol id 0, length, unit id, then function code 16
        $fc16 = { 00 00 ?? ?? ?? 10 }
    condition:
        // A request, not its reply: the MBAP length covers unit, function, address, quantity,
        // byte count and the register values, i.e. 7 + byte count.
        for any i in (1..#fc16) : ( uint16be(@fc16[i] + 2) == uint8(@fc16[i] + 10) + 7 )
}
