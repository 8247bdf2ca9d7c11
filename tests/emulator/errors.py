"""Alibaba Cloud error codes the emulator answers with (ebs-api.md section 4)."""

# code -> (HTTP status, message)
CODES = {
    # gateway / common (4.4)
    "MissingParameter": (400, "%s is mandatory for this action."),
    "InvalidParameter": (400, "The specified parameter %s is not valid."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidSignatureMethod": (400, "Specified signature method is not supported."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidSecurityToken.Expired": (400, "Specified SecurityToken is expired."),
    "InvalidSecurityToken.Malformed": (400, "Specified SecurityToken is malformed."),
    "InvalidSecurityToken.MismatchWithAccessKey":
        (400, "Specified SecurityToken mismatch with the AccessKey."),
    "UnsupportedHTTPMethod": (403, "This http method is not supported."),
    "InternalError": (500, "The request processing has failed due to some unknown error, "
                           "exception or failure."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the "
                                "server."),
    "RequestTimeout": (504, "The request is timeout, please try again later."),
    # ebs (4.3)
    "IdempotentParameterMismatch":
        (400, "The specified parameter has changed while using an already used clientToken."),
    "OperationDenied": (403, "The operation is not allowed."),
    "OperationDenied.InvalidStatus": (403, "The operation is not allowed in current status."),
    "LastTokenProcessing": (403, "The last token request is processing."),
    "OperationDenied.OperateNotAllowedForPrimary":
        (403, "Operation is not allowed on the primary site."),
    "OperationDenied.OperateNotAllowedForStandby":
        (403, "Operation is not allowed on the secondary site."),
    "Forbidden": (403, "User is not authorized to operate."),
    "Forbidden.Action": (403, "User is not authorized to operate this action."),
    "NoSuchResource": (404, "The specified resource does not exist."),
}


class ApiError(Exception):
    """An error answer: HTTP status, Code, Message (extra headers optional)."""

    def __init__(self, code, message=None, status=None, arg=None, headers=None):
        std_status, std_message = CODES.get(code, (400, code))
        if message is None:
            message = std_message % arg if "%s" in std_message else std_message
        if code.startswith("Missing") and code not in CODES:
            status = status or 400
        self.code = code
        self.message = message
        self.status = status or std_status
        self.headers = headers or []
        super().__init__("%s %s: %s" % (self.status, code, message))


def missing(param):
    """400 Missing<Param> (ebs-api.md 4.4)."""
    return ApiError("Missing" + param, "%s is mandatory for this action." % param, 400)


def invalid(param, why=None):
    msg = "The specified parameter %s is not valid." % param
    if why:
        msg += " " + why
    return ApiError("InvalidParameter", msg, 400)
