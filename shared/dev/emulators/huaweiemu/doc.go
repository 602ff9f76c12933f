// Package huaweiemu emulates the part of Huawei Cloud Image Management Service (IMS) that
// imagerelay uses, on the wire, so the official huaweicloud-sdk-go-v3 ImsClient works against
// it unchanged: point region.NewRegion("cn-north-4", "http://127.0.0.1:PORT") at it and give
// basic credentials an AK, SK and ProjectId (without ProjectId the SDK first asks IAM for one
// and panics when that fails).
//
// # API
//
//	POST /v1/cloudimages/{image_id}/cross_region_copy   CopyImageCrossRegion → 200 {"job_id"}
//	GET  /v1/{project_id}/jobs/{job_id}                  ShowJob (INIT → RUNNING → SUCCESS | FAIL)
//	GET  /v2/cloudimages?name=&id=&status=&__imagetype=  ListImages (minimal image fields)
//
// # Regions
//
// One emulator serves every region on one port. The region of a call is the region whose
// project id (Seed.Projects) the SDK sends in the X-Project-Id header — the SDK adds that
// header to every request signed with project-scoped basic credentials, and also puts the id
// in the ShowJob path. Without the header, a Host of the real form
// "ims.<region>.myhuaweicloud.com" is used. A copy is made from the region of the call (the
// source) to the body's region; its job lives in the source region, as in IMS.
//
// # Authentication
//
// Every call must carry an SDK-HMAC-SHA256 signature as the SDK makes it (core/auth/signer):
// X-Sdk-Date within 15 minutes of the emulator's clock; a canonical request of method, URI with
// each segment escaped and always ending in '/', the query sorted by key and value, the signed
// headers as name:value lines, the signed header names and the hex SHA-256 of the body; the
// HMAC-SHA256 of "SDK-HMAC-SHA256\n<date>\n<hex sha256(canonical)>" keyed with the SK itself.
// Failures answer like API Gateway does, HTTP 401 with
// {"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: ...","request_id":"..."}.
// Every answer carries an X-Request-Id header, which the SDK reports as the request id.
//
// # Error codes
//
// IMS business errors use the IMS body {"error":{"code":"IMG.xxxx","message":"..."}}. The codes
// IMG.0001, IMG.0002, IMG.0003, IMG.0004, IMG.0007, IMG.0027 and IMG.0030 are the ones of the public IMS
// error-code table, with their documented meaning. The public table names no code for the
// cross-region copy constraints, so the emulator uses the IMG.045x block below for them; the
// imagerelay huawei provider recognises both these codes and, for a real cloud, the HTTP
// status and message.
//
//	HTTP  code        when
//	400   IMG.0001    body is not JSON, or region / project_name / agency_name is missing
//	400   IMG.0002    name is missing or longer than 128 characters
//	400   IMG.0003    name has characters other than letters, digits, spaces, - _ . or
//	                  starts or ends with a space
//	400   IMG.0004    description longer than 1024 characters
//	400   IMG.0007    the request body is empty
//	404   IMG.0027    the image does not exist in the source region
//	400   IMG.0030    the project id in the ShowJob path is not the caller's project
//	400   IMG.0450    destination region is the source region
//	400   IMG.0451    destination region does not exist (not in Seed.Regions)
//	400   IMG.0452    the image is encrypted
//	400   IMG.0453    the image is larger than 128 GB
//	400   IMG.0454    the image was created from an ISO file
//	400   IMG.0455    agency_name is not an agency of the account (Seed.Agencies)
//	400   IMG.0456    project_name is not the destination region's project (its name is the region id)
//	400   IMG.0457    the tenant (AK) already runs MaxConcurrentCopies (5) cross-region copies;
//	                  message "A maximum of 5 images can be replicated across regions at a time.";
//	                  retry when one finishes
//	400   IMG.0458    description contains '<', '>', a carriage return or a line feed
//	404   IMG.0459    ShowJob: the job does not exist in this project
//	-     IMG.0460    error_code of a FAIL job (fail-copy fault)
//	500   IMG.0461    injected server error
//	401   APIGW.0301  unknown AK, bad signature, missing/expired X-Sdk-Date, unknown project
//	429   APIGW.0308  injected throttling ("The throttling threshold has been reached")
//	404   APIGW.0101  no such API
//
// # Jobs
//
// A copy's job is INIT for the first tenth of Seed.CopyDuration, then RUNNING with
// entities.process_percent rising from 0 to 100 (a percentage, not a fraction), then SUCCESS
// with entities.image_id naming the new image in the destination region. The new image is
// listed there from the start with status "saving", and "active" once the job succeeded. A job
// hit by the fail-copy fault ends FAIL with error_code IMG.0460 and a fail_reason, and its
// image is removed. Job times are UTC like "2024-11-06T06:19:43.195Z"; job_type is
// "copyImageCrossRegion" (the real string is not documented).
//
// # Faults
//
// emucore faults render as IMS would: throttle → 429 APIGW.0308, server-error → 500 IMG.0461,
// drop → the connection closes without an answer, fail-copy → the copy is accepted and its job
// fails. Every call is recorded in the emucore.CallLog with provider "huawei" and action
// CopyImageCrossRegion, ShowJob or ListImages.
package huaweiemu
