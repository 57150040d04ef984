package mqtt

import "testing"

// TestREADMEPayloads decodes the examples of the README's Payloads table,
// so that the table stays true.
func TestREADMEPayloads(t *testing.T) {
	const tasmota = `{"Time":"2024-05-01T12:00:00","AM2301":{"Temperature":24.6},"ENERGY":{"Total":[2.8,0.2]}}`
	for _, tc := range []struct {
		name    string
		sub     Subscription
		topic   string
		payload string
		want    string
	}{
		{"value", Subscription{Topic: "home/{device}/{field}", Format: "value", Measurement: "home"}, "home/d1/temp", "55\x00",
			"home,device=d1 temp=55 1700000000000000000\n"},
		{"value unit suffix", Subscription{Topic: "home/{device}/{field}", Format: "value", Measurement: "home", Value: ValueOptions{UnitSuffix: `\s*°C$`}},
			"home/d1/temp", "23.5 °C", "home,device=d1 temp=23.5 1700000000000000000\n"},
		{"json nested", Subscription{Topic: "tele/{device}/SENSOR", Format: "json", Measurement: "tasmota", JSON: JSONOptions{TimeKey: "ts", TimeUnit: "ms"}},
			"tele/t1/SENSOR", tasmota,
			"tasmota,device=t1 AM2301_Temperature=24.6 1700000000000000000\n" +
				"tasmota,device=t1 ENERGY_Total_0=2.8 1700000000000000000\n" +
				"tasmota,device=t1 ENERGY_Total_1=0.2 1700000000000000000\n"},
		{"json time zone", Subscription{Topic: "tele/{device}/SENSOR", Format: "json", Measurement: "tasmota", JSON: JSONOptions{TimeKey: "Time", TimeUnit: "ms", TimeZone: "Europe/Berlin"}},
			"tele/t1/SENSOR", tasmota,
			"tasmota,device=t1 AM2301_Temperature=24.6 1714557600000000000\n" +
				"tasmota,device=t1 ENERGY_Total_0=2.8 1714557600000000000\n" +
				"tasmota,device=t1 ENERGY_Total_1=0.2 1714557600000000000\n"},
		{"json records", Subscription{Topic: "tele/{bridge}/SENSOR", Format: "json", Measurement: "zigbee", JSON: JSONOptions{TimeUnit: "ms", TagKeys: []string{"ZbReceived.*.Device"}}},
			"tele/zb/SENSOR", `{"ZbReceived":{"0x6A8D":{"Device":"0x6A8D","Temperature":21.5}}}`,
			"zigbee,Device=0x6A8D,bridge=zb Temperature=21.5 1700000000000000000\n"},
		{"json fields", Subscription{Topic: "v3/{app}/devices/{device}/up", Format: "json", Measurement: "ttn",
			JSON: JSONOptions{TimeUnit: "ms", Fields: []string{"uplink_message.decoded_payload.*"}}},
			"v3/app@ttn/devices/dev1/up", `{"end_device_ids":{"f_port":1},"uplink_message":{"f_cnt":7,"decoded_payload":{"temp":21.5},"rx_metadata":[{"rssi":-42}]}}`,
			"ttn,app=app@ttn,device=dev1 uplink_message_decoded_payload_temp=21.5 1700000000000000000\n"},
		{"influx", Subscription{Topic: "lp/{site}", Format: "influx", Influx: InfluxOptions{Precision: "s"}}, "lp/s1",
			"home,room=Kitchen temp=21.1,hum=35.9 1641024000",
			"home,room=Kitchen,site=s1 temp=21.1 1641024000000000000\nhome,room=Kitchen,site=s1 hum=35.9 1641024000000000000\n"},
		{"senml", Subscription{Topic: "senml/{site}", Format: "senml", Measurement: "senml", SenML: SenMLOptions{DeviceSeparator: ":"}}, "senml/s1",
			`[{"bn":"dev1:","bt":1.7e9,"n":"temp","u":"Cel","v":21.5}]`,
			"senml,device=dev1,site=s1,unit=Cel temp=21.5 1700000000000000000\n"},
	} {
		r := mustRouter(t, false, tc.sub)
		rs, err := r.decode(nil, tc.topic, []byte(tc.payload), arrival)
		if got := lineProtocol(rs); err != nil || got != tc.want {
			t.Errorf("%s: decode(%q) = %v\n%s; want\n%s", tc.name, tc.payload, err, got, tc.want)
		}
	}
}
