package kserve

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// wireField is one field of a message as Triton's protocol defines it. The
// type is written the way fieldType renders a descriptor:
//
//	"string", "repeated int64", "inference.ModelConfig" (a message or enum),
//	"map<string, inference.InferParameter>", "oneof parameter_choice bool".
type wireField struct {
	number protowire.Number
	name   string
	typ    string
}

// wireMessages is the protocol as Triton's grpc_service.proto and
// model_config.proto define it (field numbers, names, types and cardinality). A field with a wrong
// number, name, type or cardinality in our .proto files is a silent
// incompatibility with a real Triton; this table makes it a test failure.
var wireMessages = map[protoreflect.FullName][]wireField{
	"inference.ServerLiveRequest":  {},
	"inference.ServerLiveResponse": {{1, "live", "bool"}},
	"inference.ServerReadyRequest": {},
	"inference.ServerReadyResponse": {
		{1, "ready", "bool"},
	},
	"inference.ModelReadyRequest": {
		{1, "name", "string"},
		{2, "version", "string"},
	},
	"inference.ModelReadyResponse": {
		{1, "ready", "bool"},
	},
	"inference.ServerMetadataRequest": {},
	"inference.ServerMetadataResponse": {
		{1, "name", "string"},
		{2, "version", "string"},
		{3, "extensions", "repeated string"},
	},
	"inference.ModelMetadataRequest": {
		{1, "name", "string"},
		{2, "version", "string"},
	},
	"inference.ModelMetadataResponse": {
		{1, "name", "string"},
		{2, "versions", "repeated string"},
		{3, "platform", "string"},
		{4, "inputs", "repeated inference.ModelMetadataResponse.TensorMetadata"},
		{5, "outputs", "repeated inference.ModelMetadataResponse.TensorMetadata"},
	},
	"inference.ModelMetadataResponse.TensorMetadata": {
		{1, "name", "string"},
		{2, "datatype", "string"},
		{3, "shape", "repeated int64"},
	},
	"inference.InferParameter": {
		{1, "bool_param", "oneof parameter_choice bool"},
		{2, "int64_param", "oneof parameter_choice int64"},
		{3, "string_param", "oneof parameter_choice string"},
		{4, "double_param", "oneof parameter_choice double"},
		{5, "uint64_param", "oneof parameter_choice uint64"},
	},
	"inference.InferTensorContents": {
		{1, "bool_contents", "repeated bool"},
		{2, "int_contents", "repeated int32"},
		{3, "int64_contents", "repeated int64"},
		{4, "uint_contents", "repeated uint32"},
		{5, "uint64_contents", "repeated uint64"},
		{6, "fp32_contents", "repeated float"},
		{7, "fp64_contents", "repeated double"},
		{8, "bytes_contents", "repeated bytes"},
	},
	"inference.ModelInferRequest": {
		{1, "model_name", "string"},
		{2, "model_version", "string"},
		{3, "id", "string"},
		{4, "parameters", "map<string, inference.InferParameter>"},
		{5, "inputs", "repeated inference.ModelInferRequest.InferInputTensor"},
		{6, "outputs", "repeated inference.ModelInferRequest.InferRequestedOutputTensor"},
		{7, "raw_input_contents", "repeated bytes"},
	},
	"inference.ModelInferRequest.InferInputTensor": {
		{1, "name", "string"},
		{2, "datatype", "string"},
		{3, "shape", "repeated int64"},
		{4, "parameters", "map<string, inference.InferParameter>"},
		{5, "contents", "inference.InferTensorContents"},
	},
	"inference.ModelInferRequest.InferRequestedOutputTensor": {
		{1, "name", "string"},
		{2, "parameters", "map<string, inference.InferParameter>"},
	},
	"inference.ModelInferResponse": {
		{1, "model_name", "string"},
		{2, "model_version", "string"},
		{3, "id", "string"},
		{4, "parameters", "map<string, inference.InferParameter>"},
		{5, "outputs", "repeated inference.ModelInferResponse.InferOutputTensor"},
		{6, "raw_output_contents", "repeated bytes"},
	},
	"inference.ModelInferResponse.InferOutputTensor": {
		{1, "name", "string"},
		{2, "datatype", "string"},
		{3, "shape", "repeated int64"},
		{4, "parameters", "map<string, inference.InferParameter>"},
		{5, "contents", "inference.InferTensorContents"},
	},
	"inference.ModelConfigRequest": {
		{1, "name", "string"},
		{2, "version", "string"},
	},
	"inference.ModelConfigResponse": {
		{1, "config", "inference.ModelConfig"},
	},
	"inference.ModelConfig": {
		{1, "name", "string"},
		{2, "platform", "string"},
		{4, "max_batch_size", "int32"},
		{5, "input", "repeated inference.ModelInput"},
		{6, "output", "repeated inference.ModelOutput"},
		{11, "dynamic_batching", "oneof scheduling_choice inference.ModelDynamicBatching"},
		{14, "parameters", "map<string, inference.ModelParameter>"},
		{17, "backend", "string"},
	},
	"inference.ModelParameter": {
		{1, "string_value", "string"},
	},
	"inference.ModelInput": {
		{1, "name", "string"},
		{2, "data_type", "inference.DataType"},
		{3, "format", "inference.ModelInput.Format"},
		{4, "dims", "repeated int64"},
	},
	"inference.ModelOutput": {
		{1, "name", "string"},
		{2, "data_type", "inference.DataType"},
		{3, "dims", "repeated int64"},
		{4, "label_filename", "string"},
	},
	"inference.ModelDynamicBatching": {
		{1, "preferred_batch_size", "repeated int32"},
		{2, "max_queue_delay_microseconds", "uint64"},
	},
	// The system shared-memory extension, checked against the descriptors of
	// tritonclient's grpc_service_pb2 shipped with Triton 2.51 (nvidia-pytriton
	// 0.7.0) and against that server (gateway/cmd/gateway's real-Triton test).
	"inference.SystemSharedMemoryStatusRequest": {
		{1, "name", "string"},
	},
	"inference.SystemSharedMemoryStatusResponse": {
		{1, "regions", "map<string, inference.SystemSharedMemoryStatusResponse.RegionStatus>"},
	},
	"inference.SystemSharedMemoryStatusResponse.RegionStatus": {
		{1, "name", "string"},
		{2, "key", "string"},
		{3, "offset", "uint64"},
		{4, "byte_size", "uint64"},
	},
	"inference.SystemSharedMemoryRegisterRequest": {
		{1, "name", "string"},
		{2, "key", "string"},
		{3, "offset", "uint64"},
		{4, "byte_size", "uint64"},
	},
	"inference.SystemSharedMemoryRegisterResponse": {},
	"inference.SystemSharedMemoryUnregisterRequest": {
		{1, "name", "string"},
	},
	"inference.SystemSharedMemoryUnregisterResponse": {},
}

// wireEnums lists every enum value by name and number.
var wireEnums = map[protoreflect.FullName]map[protoreflect.Name]protoreflect.EnumNumber{
	"inference.DataType": {
		"TYPE_INVALID": 0, "TYPE_BOOL": 1, "TYPE_UINT8": 2, "TYPE_UINT16": 3,
		"TYPE_UINT32": 4, "TYPE_UINT64": 5, "TYPE_INT8": 6, "TYPE_INT16": 7,
		"TYPE_INT32": 8, "TYPE_INT64": 9, "TYPE_FP16": 10, "TYPE_FP32": 11,
		"TYPE_FP64": 12, "TYPE_STRING": 13, "TYPE_BF16": 14,
	},
	"inference.ModelInput.Format": {
		"FORMAT_NONE": 0, "FORMAT_NHWC": 1, "FORMAT_NCHW": 2,
	},
}

// wireMethods lists every RPC: the full method name on the wire and its
// request and response messages. All are unary.
var wireMethods = []struct {
	fullMethod string
	generated  string // the FullMethodName constant protoc-gen-go-grpc wrote
	request    protoreflect.FullName
	response   protoreflect.FullName
}{
	{"/inference.GRPCInferenceService/ServerLive", GRPCInferenceService_ServerLive_FullMethodName, "inference.ServerLiveRequest", "inference.ServerLiveResponse"},
	{"/inference.GRPCInferenceService/ServerReady", GRPCInferenceService_ServerReady_FullMethodName, "inference.ServerReadyRequest", "inference.ServerReadyResponse"},
	{"/inference.GRPCInferenceService/ModelReady", GRPCInferenceService_ModelReady_FullMethodName, "inference.ModelReadyRequest", "inference.ModelReadyResponse"},
	{"/inference.GRPCInferenceService/ServerMetadata", GRPCInferenceService_ServerMetadata_FullMethodName, "inference.ServerMetadataRequest", "inference.ServerMetadataResponse"},
	{"/inference.GRPCInferenceService/ModelMetadata", GRPCInferenceService_ModelMetadata_FullMethodName, "inference.ModelMetadataRequest", "inference.ModelMetadataResponse"},
	{"/inference.GRPCInferenceService/ModelInfer", GRPCInferenceService_ModelInfer_FullMethodName, "inference.ModelInferRequest", "inference.ModelInferResponse"},
	{"/inference.GRPCInferenceService/ModelConfig", GRPCInferenceService_ModelConfig_FullMethodName, "inference.ModelConfigRequest", "inference.ModelConfigResponse"},
	{"/inference.GRPCInferenceService/SystemSharedMemoryStatus", GRPCInferenceService_SystemSharedMemoryStatus_FullMethodName, "inference.SystemSharedMemoryStatusRequest", "inference.SystemSharedMemoryStatusResponse"},
	{"/inference.GRPCInferenceService/SystemSharedMemoryRegister", GRPCInferenceService_SystemSharedMemoryRegister_FullMethodName, "inference.SystemSharedMemoryRegisterRequest", "inference.SystemSharedMemoryRegisterResponse"},
	{"/inference.GRPCInferenceService/SystemSharedMemoryUnregister", GRPCInferenceService_SystemSharedMemoryUnregister_FullMethodName, "inference.SystemSharedMemoryUnregisterRequest", "inference.SystemSharedMemoryUnregisterResponse"},
}

// protoFiles are the descriptors of both generated files.
func protoFiles() []protoreflect.FileDescriptor {
	return []protoreflect.FileDescriptor{File_grpc_service_proto, File_model_config_proto}
}

// fieldType renders a field's type and cardinality in the notation of
// wireField.typ.
func fieldType(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return "map<" + valueType(fd.MapKey()) + ", " + valueType(fd.MapValue()) + ">"
	}
	var b strings.Builder
	if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
		b.WriteString("oneof " + string(od.Name()) + " ")
	}
	if fd.HasOptionalKeyword() {
		b.WriteString("optional ")
	}
	if fd.IsList() {
		b.WriteString("repeated ")
	}
	b.WriteString(valueType(fd))
	return b.String()
}

// valueType names the type of one value of a field: its scalar kind, or the
// full name of its message or enum.
func valueType(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return string(fd.Enum().FullName())
	default:
		return fd.Kind().String()
	}
}

// allMessages walks every message declared in the files, nested ones
// included, except the entry messages that protoc synthesises for maps.
func allMessages(files []protoreflect.FileDescriptor) []protoreflect.MessageDescriptor {
	var out []protoreflect.MessageDescriptor
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			md := ms.Get(i)
			if md.IsMapEntry() {
				continue
			}
			out = append(out, md)
			walk(md.Messages())
		}
	}
	for _, f := range files {
		walk(f.Messages())
	}
	return out
}

func allEnums(files []protoreflect.FileDescriptor) []protoreflect.EnumDescriptor {
	var out []protoreflect.EnumDescriptor
	for _, f := range files {
		for i := range f.Enums().Len() {
			out = append(out, f.Enums().Get(i))
		}
	}
	for _, md := range allMessages(files) {
		for i := range md.Enums().Len() {
			out = append(out, md.Enums().Get(i))
		}
	}
	return out
}

func TestFilesArePackageInferenceProto3(t *testing.T) {
	for _, f := range protoFiles() {
		if got, want := f.Package(), protoreflect.FullName("inference"); got != want {
			t.Errorf("%s: package = %q, want %q (it is part of every method name on the wire)", f.Path(), got, want)
		}
		if got, want := f.Syntax(), protoreflect.Proto3; got != want {
			t.Errorf("%s: syntax = %v, want %v", f.Path(), got, want)
		}
	}
}

func TestMessagesMatchTheProtocol(t *testing.T) {
	declared := map[protoreflect.FullName]protoreflect.MessageDescriptor{}
	for _, md := range allMessages(protoFiles()) {
		declared[md.FullName()] = md
		if _, ok := wireMessages[md.FullName()]; !ok {
			t.Errorf("message %s is declared but not in the protocol table: add it to wireMessages from the protocol facts", md.FullName())
		}
	}
	for name, want := range wireMessages {
		t.Run(string(name), func(t *testing.T) {
			md, ok := declared[name]
			if !ok {
				t.Fatalf("message %s is not declared", name)
			}
			fields := md.Fields()
			if fields.Len() != len(want) {
				var got []string
				for i := range fields.Len() {
					got = append(got, string(fields.Get(i).Name()))
				}
				t.Errorf("%d fields %v, want %d", fields.Len(), got, len(want))
			}
			for _, w := range want {
				fd := fields.ByNumber(w.number)
				if fd == nil {
					t.Errorf("no field number %d (want %s %s)", w.number, w.typ, w.name)
					continue
				}
				if fd.Name() != protoreflect.Name(w.name) {
					t.Errorf("field %d: name = %s, want %s", w.number, fd.Name(), w.name)
				}
				if got := fieldType(fd); got != w.typ {
					t.Errorf("field %d %s: type = %q, want %q", w.number, fd.Name(), got, w.typ)
				}
			}
		})
	}
}

func TestEnumsMatchTheProtocol(t *testing.T) {
	declared := map[protoreflect.FullName]protoreflect.EnumDescriptor{}
	for _, ed := range allEnums(protoFiles()) {
		declared[ed.FullName()] = ed
		if _, ok := wireEnums[ed.FullName()]; !ok {
			t.Errorf("enum %s is declared but not in the protocol table", ed.FullName())
		}
	}
	for name, want := range wireEnums {
		t.Run(string(name), func(t *testing.T) {
			ed, ok := declared[name]
			if !ok {
				t.Fatalf("enum %s is not declared", name)
			}
			values := ed.Values()
			if values.Len() != len(want) {
				t.Errorf("%d values, want %d", values.Len(), len(want))
			}
			for valueName, number := range want {
				vd := values.ByName(valueName)
				if vd == nil {
					t.Errorf("no value %s", valueName)
					continue
				}
				if vd.Number() != number {
					t.Errorf("%s = %d, want %d", valueName, vd.Number(), number)
				}
			}
		})
	}
	// The generated Go constants carry the same numbers.
	if got, want := DataType_TYPE_FP32.Number(), protoreflect.EnumNumber(11); got != want {
		t.Errorf("DataType_TYPE_FP32 = %d, want %d", got, want)
	}
	if got, want := ModelInput_FORMAT_NCHW.Number(), protoreflect.EnumNumber(2); got != want {
		t.Errorf("ModelInput_FORMAT_NCHW = %d, want %d", got, want)
	}
}

func TestGeneratedTypesUseTheProtocolNames(t *testing.T) {
	// One generated Go type per message, checked from the Go side so that a
	// renamed message in the .proto cannot pass by matching only itself.
	cases := []struct {
		msg  proto.Message
		want protoreflect.FullName
	}{
		{&ServerLiveRequest{}, "inference.ServerLiveRequest"},
		{&ServerReadyResponse{}, "inference.ServerReadyResponse"},
		{&ModelReadyRequest{}, "inference.ModelReadyRequest"},
		{&ServerMetadataResponse{}, "inference.ServerMetadataResponse"},
		{&ModelMetadataResponse_TensorMetadata{}, "inference.ModelMetadataResponse.TensorMetadata"},
		{&InferParameter{}, "inference.InferParameter"},
		{&InferTensorContents{}, "inference.InferTensorContents"},
		{&ModelInferRequest{}, "inference.ModelInferRequest"},
		{&ModelInferRequest_InferInputTensor{}, "inference.ModelInferRequest.InferInputTensor"},
		{&ModelInferRequest_InferRequestedOutputTensor{}, "inference.ModelInferRequest.InferRequestedOutputTensor"},
		{&ModelInferResponse{}, "inference.ModelInferResponse"},
		{&ModelInferResponse_InferOutputTensor{}, "inference.ModelInferResponse.InferOutputTensor"},
		{&ModelConfigResponse{}, "inference.ModelConfigResponse"},
		{&ModelConfig{}, "inference.ModelConfig"},
		{&ModelInput{}, "inference.ModelInput"},
		{&ModelOutput{}, "inference.ModelOutput"},
		{&ModelDynamicBatching{}, "inference.ModelDynamicBatching"},
		{&ModelParameter{}, "inference.ModelParameter"},
		{&SystemSharedMemoryStatusRequest{}, "inference.SystemSharedMemoryStatusRequest"},
		{&SystemSharedMemoryStatusResponse{}, "inference.SystemSharedMemoryStatusResponse"},
		{&SystemSharedMemoryStatusResponse_RegionStatus{}, "inference.SystemSharedMemoryStatusResponse.RegionStatus"},
		{&SystemSharedMemoryRegisterRequest{}, "inference.SystemSharedMemoryRegisterRequest"},
		{&SystemSharedMemoryRegisterResponse{}, "inference.SystemSharedMemoryRegisterResponse"},
		{&SystemSharedMemoryUnregisterRequest{}, "inference.SystemSharedMemoryUnregisterRequest"},
		{&SystemSharedMemoryUnregisterResponse{}, "inference.SystemSharedMemoryUnregisterResponse"},
	}
	for _, c := range cases {
		if got := c.msg.ProtoReflect().Descriptor().FullName(); got != c.want {
			t.Errorf("%T: full name = %s, want %s", c.msg, got, c.want)
		}
	}
}

func TestServiceMatchesTheProtocol(t *testing.T) {
	services := File_grpc_service_proto.Services()
	if services.Len() != 1 {
		t.Fatalf("%d services, want 1", services.Len())
	}
	sd := services.Get(0)
	if got, want := sd.FullName(), protoreflect.FullName("inference.GRPCInferenceService"); got != want {
		t.Fatalf("service = %s, want %s", got, want)
	}
	if got, want := GRPCInferenceService_ServiceDesc.ServiceName, "inference.GRPCInferenceService"; got != want {
		t.Errorf("ServiceDesc.ServiceName = %s, want %s", got, want)
	}
	if got, want := sd.Methods().Len(), len(wireMethods); got != want {
		t.Errorf("%d methods, want %d", got, want)
	}
	for _, w := range wireMethods {
		if w.generated != w.fullMethod {
			t.Errorf("generated full method name = %s, want %s", w.generated, w.fullMethod)
		}
		rpc := protoreflect.Name(w.fullMethod[strings.LastIndexByte(w.fullMethod, '/')+1:])
		m := sd.Methods().ByName(rpc)
		if m == nil {
			t.Errorf("no method %s", rpc)
			continue
		}
		if got := "/" + string(sd.FullName()) + "/" + string(m.Name()); got != w.fullMethod {
			t.Errorf("%s: full method = %s, want %s", rpc, got, w.fullMethod)
		}
		if m.IsStreamingClient() || m.IsStreamingServer() {
			t.Errorf("%s is streaming, want unary", rpc)
		}
		if got := m.Input().FullName(); got != w.request {
			t.Errorf("%s request = %s, want %s", rpc, got, w.request)
		}
		if got := m.Output().FullName(); got != w.response {
			t.Errorf("%s response = %s, want %s", rpc, got, w.response)
		}
	}
}

// TestDecodesHandEncodedClassificationRequest checks the numbers on real
// bytes, independently of the descriptors: a request encoded field by field
// with protowire, as Triton's own stubs would, decodes into the right fields.
func TestDecodesHandEncodedClassificationRequest(t *testing.T) {
	var param []byte // InferParameter{int64_param: 3}
	param = protowire.AppendTag(param, 2, protowire.VarintType)
	param = protowire.AppendVarint(param, 3)

	var entry []byte // map entry: key = 1, value = 2
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "classification")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, param)

	var output []byte // InferRequestedOutputTensor
	output = protowire.AppendTag(output, 1, protowire.BytesType)
	output = protowire.AppendString(output, "probabilities")
	output = protowire.AppendTag(output, 2, protowire.BytesType)
	output = protowire.AppendBytes(output, entry)

	var shape []byte // packed repeated int64
	shape = protowire.AppendVarint(shape, 1)
	shape = protowire.AppendVarint(shape, 3)

	var input []byte // InferInputTensor
	input = protowire.AppendTag(input, 1, protowire.BytesType)
	input = protowire.AppendString(input, "images")
	input = protowire.AppendTag(input, 2, protowire.BytesType)
	input = protowire.AppendString(input, "FP32")
	input = protowire.AppendTag(input, 3, protowire.BytesType)
	input = protowire.AppendBytes(input, shape)

	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendString(req, "fish_classifier")
	req = protowire.AppendTag(req, 2, protowire.BytesType)
	req = protowire.AppendString(req, "1")
	req = protowire.AppendTag(req, 3, protowire.BytesType)
	req = protowire.AppendString(req, "req-7")
	req = protowire.AppendTag(req, 5, protowire.BytesType)
	req = protowire.AppendBytes(req, input)
	req = protowire.AppendTag(req, 6, protowire.BytesType)
	req = protowire.AppendBytes(req, output)
	req = protowire.AppendTag(req, 7, protowire.BytesType)
	req = protowire.AppendBytes(req, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40})

	var got ModelInferRequest
	if err := proto.Unmarshal(req, &got); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if len(got.ProtoReflect().GetUnknown()) != 0 {
		t.Errorf("unknown fields left over: % x", got.ProtoReflect().GetUnknown())
	}
	if got.GetModelName() != "fish_classifier" || got.GetModelVersion() != "1" || got.GetId() != "req-7" {
		t.Errorf("model_name, model_version, id = %q, %q, %q", got.GetModelName(), got.GetModelVersion(), got.GetId())
	}
	if len(got.GetInputs()) != 1 {
		t.Fatalf("%d inputs, want 1", len(got.GetInputs()))
	}
	in := got.GetInputs()[0]
	if in.GetName() != "images" || in.GetDatatype() != "FP32" || !slices.Equal(in.GetShape(), []int64{1, 3}) {
		t.Errorf("input = %q %q %v, want images FP32 [1 3]", in.GetName(), in.GetDatatype(), in.GetShape())
	}
	if len(got.GetOutputs()) != 1 {
		t.Fatalf("%d outputs, want 1", len(got.GetOutputs()))
	}
	out := got.GetOutputs()[0]
	if out.GetName() != "probabilities" {
		t.Errorf("output name = %q, want probabilities", out.GetName())
	}
	if n := out.GetParameters()["classification"].GetInt64Param(); n != 3 {
		t.Errorf("classification = %d, want int64_param 3", n)
	}
	if raw := got.GetRawInputContents(); len(raw) != 1 || len(raw[0]) != 12 {
		t.Errorf("raw_input_contents = %v, want one 12-byte tensor", raw)
	}
}

// liveServer answers ServerLive and leaves every other RPC to the generated
// Unimplemented embedding.
type liveServer struct {
	UnimplementedGRPCInferenceServiceServer
}

func (liveServer) ServerLive(context.Context, *ServerLiveRequest) (*ServerLiveResponse, error) {
	return &ServerLiveResponse{Live: true}, nil
}

// startServer serves srv on a loopback TCP socket until the test ends and
// returns a client connected to it.
func startServer(t *testing.T, srv GRPCInferenceServiceServer) GRPCInferenceServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := grpc.NewServer()
	RegisterGRPCInferenceServiceServer(s, srv)
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return NewGRPCInferenceServiceClient(conn)
}

func TestRoundTripOverLoopback(t *testing.T) {
	client := startServer(t, liveServer{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	live, err := client.ServerLive(ctx, &ServerLiveRequest{})
	if err != nil {
		t.Fatalf("ServerLive: %v", err)
	}
	if !live.GetLive() {
		t.Errorf("ServerLive: live = false, want true")
	}

	_, err = client.ModelInfer(ctx, &ModelInferRequest{ModelName: "fish_classifier"})
	if got, want := status.Code(err), codes.Unimplemented; got != want {
		t.Errorf("ModelInfer on a server without it: code = %v (%v), want %v", got, err, want)
	}
}
