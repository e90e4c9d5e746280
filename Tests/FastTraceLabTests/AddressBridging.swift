// The lab tests build IPv4 addresses; routes and results carry addresses of either family.

import FastTraceWire

func == (lhs: IPAddress?, rhs: IPv4Address) -> Bool { lhs == IPAddress(rhs) }
func == (lhs: IPAddress?, rhs: IPv4Address?) -> Bool { lhs == rhs.map(IPAddress.init) }
